import { describe, expect, it } from 'vitest';
import { defaultPaths } from '../../../src/util/paths.js';
import { renderLaunchdPlist, renderSystemdUnit } from '../../../src/resources/service/render.js';
import { plistProgramArguments } from '../../../src/platform/darwin/plist.js';
import { UAPI_DIR_DEFAULT } from '../../../src/resources/engine/process-host.js';

describe('default paths per OS', () => {
  it('Linux: /var/lib/awg and /run/awg/awg.sock', () => {
    expect(defaultPaths('linux')).toEqual({
      stateDir: '/var/lib/awg',
      socket: '/run/awg/awg.sock',
    });
  });
  it('macOS has no /run or /var/lib: /Library/Application Support/awg and /var/run/awg/awg.sock', () => {
    expect(defaultPaths('darwin')).toEqual({
      stateDir: '/Library/Application Support/awg',
      socket: '/var/run/awg/awg.sock',
    });
  });
  it("the engines' UAPI sockets: /var/run/wireguard on both (where wg, and wireguard-go on macOS, look)", () => {
    expect(UAPI_DIR_DEFAULT).toBe('/var/run/wireguard');
  });
  it('the service definitions leave the defaults to the daemon: no Linux path in the launchd plist', () => {
    const inv = {
      node: '/opt/homebrew/bin/node',
      bin: '/usr/local/lib/awg/bin/awg.js',
      config: '/etc/awg/awg.yaml',
    };
    const plist = renderLaunchdPlist(inv);
    expect(plist).not.toMatch(/\/run\/awg|\/var\/lib/);
    expect(renderSystemdUnit(inv)).toContain('StateDirectory=awg\n');
    // given explicitly (macOS defaults), the path with a space is one argv entry
    const argv = plistProgramArguments(renderLaunchdPlist({ ...inv, ...defaultPaths('darwin') }))!;
    expect(argv.slice(argv.indexOf('--state-dir'), argv.indexOf('--state-dir') + 4)).toEqual([
      '--state-dir',
      '/Library/Application Support/awg',
      '--socket',
      '/var/run/awg/awg.sock',
    ]);
  });
});
