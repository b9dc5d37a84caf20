/**
 * The kill switch from boot on macOS, pure parts (src/platform/darwin/pf-boot.ts, the plist of
 * com.awg.killswitch): the job's argv and plist (golden), the main ruleset and anchor it loads
 * and their parsers, the `-E` tokens its log holds (the captured `pfctl -E` output). Its effect
 * at boot is shown on the host model (host-model-boot.test.ts); no Mac has booted with it.
 */
import { describe, expect, it } from 'vitest';
import {
  BOOT_CONF_FILE,
  bootJobArgv,
  bootTokens,
  isOurBootConf,
  parseBootAnchor,
  renderBootAnchor,
  renderBootConf,
} from '../../../src/platform/darwin/pf-boot.js';
import { plistProgramArguments } from '../../../src/platform/darwin/plist.js';
import { renderKillSwitchLaunchdPlist } from '../../../src/resources/service/render.js';
import { DEFAULT_PF_CONF } from '../../helpers/macos-host/model.js';
import { fixture } from './fixtures.js';
import { golden } from './helpers.js';

const ANCHOR = `# awg PF anchor (rendered; do not edit)
pass quick on lo0 all flags any
pass quick on $awg_home inet all flags any
pass out quick inet proto udp from any to 198.51.100.7 port 51820
block drop out quick all
`;

describe('the boot job', () => {
  it('plist (golden): RunAtLoad, LaunchOnlyOnce, no KeepAlive, stderr to the log the driver reads; the state directory with its space in one argument', () => {
    const text = renderKillSwitchLaunchdPlist({});
    golden('com.awg.killswitch.plist', text);
    expect(text).not.toContain('KeepAlive');
    expect(plistProgramArguments(text)).toEqual(bootJobArgv('/Library/Application Support/awg'));
    expect(bootJobArgv('/Library/Application Support/awg')).toEqual([
      '/bin/sh',
      '-c',
      'test -f "$0" || exit 0; exec /sbin/pfctl -E -f "$0"',
      `/Library/Application Support/awg/${BOOT_CONF_FILE}`,
    ]);
    expect(() => bootJobArgv('state')).toThrow(/absolute/);
  });

  it('the main ruleset: /etc/pf.conf, our hook, then our anchor from its file; recognised only for that table and file', () => {
    const conf = renderBootConf(
      DEFAULT_PF_CONF,
      'awg',
      '/Library/Application Support/awg/killswitch-boot.anchor',
    );
    expect(conf.startsWith('# managed-by=awg')).toBe(true);
    expect(conf).toContain(DEFAULT_PF_CONF);
    expect(
      conf.endsWith(
        'anchor "com.awg/*"\nload anchor "com.awg/awg" from "/Library/Application Support/awg/killswitch-boot.anchor"\n',
      ),
    ).toBe(true);
    expect(
      isOurBootConf(conf, 'awg', '/Library/Application Support/awg/killswitch-boot.anchor'),
    ).toBe(true);
    expect(
      isOurBootConf(conf, 'other', '/Library/Application Support/awg/killswitch-boot.anchor'),
    ).toBe(false);
    expect(isOurBootConf(DEFAULT_PF_CONF, 'awg', '/x')).toBe(false);
    expect(() => renderBootConf(DEFAULT_PF_CONF, 'awg', '/a"b')).toThrow(/cannot quote/);
  });

  it('the anchor: every tunnel rule commented (no utun at boot), the rest as rendered; parsed back to the rendered anchor', () => {
    const text = renderBootAnchor('awg', ANCHOR);
    expect(text).toContain('# unbound awg_home: pass quick on $awg_home inet all flags any\n');
    expect(text).toContain(
      '\npass out quick inet proto udp from any to 198.51.100.7 port 51820\nblock drop out quick all\n',
    );
    expect(parseBootAnchor(text)).toEqual({ table: 'awg', boot: ANCHOR });
    expect(parseBootAnchor(ANCHOR)).toBeUndefined();
    expect(
      parseBootAnchor(text.replace('# anchor com.awg/awg', '# anchor elsewhere')),
    ).toBeUndefined();
  });

  it('tokens in the job’s log (launchd appends: oldest first), from the captured pfctl -E output', () => {
    const captured = fixture('pf/pfctl-E-token-sonoma-14.1.1-sshuttle.txt');
    expect(bootTokens(captured)).toEqual(['4235676552202453487']);
    expect(
      bootTokens(
        `${captured}pfctl: /x: No such file or directory\n${captured.replace('4235676552202453487', '77')}`,
      ),
    ).toEqual(['4235676552202453487', '77']);
    expect(bootTokens('')).toEqual([]);
  });
});
