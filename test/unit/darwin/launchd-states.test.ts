/**
 * `awg service status|install|uninstall` on macOS: the states a user sees and idempotent
 * install/uninstall, on captured `launchctl print`, `print-disabled` and `bootstrap`/`bootout`
 * outputs (test/fixtures/macos/launchd) replayed through a scripted Exec.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  btmDisallows,
  classifyLaunchctl,
  parseDumpBtm,
  parseLaunchctlDisabled,
} from '../../../src/platform/darwin/launchctl.js';
import { plistProgramArguments } from '../../../src/platform/darwin/plist.js';
import {
  launchdManager,
  launchdOutdated,
  launchdState,
  userState,
  type ServiceState,
} from '../../../src/resources/service/manager.js';
import {
  daemonArgv,
  parseDaemonArgv,
  renderLaunchdPlist,
  type DaemonInvocation,
} from '../../../src/resources/service/render.js';
import { ScriptedExec } from './fake-exec.js';
import { fixture } from './fixtures.js';

const running = fixture('launchd/launchctl-print-gui-running-keepalive-macos27.txt');
const exited = fixture('launchd/launchctl-print-gui-interval-exited-macos27.txt');
const notFound = fixture('launchd/launchctl-print-not-found-stderr-macos27.txt');
const disabledSystem = fixture('launchd/launchctl-print-disabled-system-nix-installer.txt');
const disabledOld = fixture('launchd/launchctl-print-disabled-user-true-false-ninehills.txt');
const bootstrap119 = fixture('launchd/launchctl-bootstrap-system-disabled-119-nix-installer.txt');
const esrch = fixture('launchd/launchctl-bootout-esrch-and-eio-nix-installer.txt');
const btmPostgres = fixture('launchd/sfltool-dumpbtm-app-record-postgresapp.txt');
/**
 * SYNTHESISED `sfltool dumpbtm` (no capture of a LaunchDaemon record exists here): the
 * captured record layout (btmPostgres) with the per-UID header and `#N:` lines and a
 * `legacy daemon (0x10010)` type as a published guide shows them; `disposition` is ours.
 */
function btmDump(disposition: string, o: { id?: string; url?: string } = {}): string {
  return [
    '========================',
    ' Records for UID -2 : FFFFEEEE-DDDD-CCCC-BBBB-AAAAFFFFFFFE',
    '========================',
    '',
    ' Items:',
    '',
    ' #1:',
    '                 UUID: 11111111-2222-3333-4444-555555555555',
    '                 Name: node',
    '       Developer Name: (null)',
    '                 Type: legacy daemon (0x10010)',
    `          Disposition: ${disposition}`,
    `           Identifier: ${o.id ?? '16.com.awg.daemon'}`,
    `                  URL: ${o.url ?? 'file:///Library/LaunchDaemons/com.awg.daemon.plist'}`,
    '      Executable Path: /opt/homebrew/bin/node',
    '           Generation: 1',
    '    Parent Identifier: Unknown Developer',
    '  Embedded Item Identifiers:',
    '    #1: 16.com.awg.other',
    '',
  ].join('\n');
}
const DISALLOWED = '[enabled, disallowed, notified] (0x9)';
const ALLOWED = '[enabled, allowed, notified] (0xb)';
/** the captured system-domain output with our label in it (only the label is ours) */
const DISABLED_AWG = disabledSystem.replace('org.nixos.nix-daemon', 'com.awg.daemon');
const base: ServiceState = {
  state: 'installed',
  installed: true,
  path: '/Library/LaunchDaemons/com.awg.daemon.plist',
  detail: {},
};
const ok = (stdout: string) => ({ code: 0, stdout });
const NOT_FOUND = { code: 113, stdout: '', stderr: notFound };
const INV: DaemonInvocation = {
  node: '/opt/homebrew/bin/node',
  bin: '/usr/local/lib/awg/bin/awg.js',
  config: '/etc/awg/awg.yaml',
};
const CUR = { node: INV.node, bin: INV.bin };

describe('launchctl print-disabled (captured, both spellings)', () => {
  it('macOS 13+ `=> disabled` in the system domain', () => {
    expect(parseLaunchctlDisabled(disabledSystem)).toEqual(
      new Map([
        ['org.nixos.darwin-store', true],
        ['org.nixos.nix-daemon', true],
      ]),
    );
  });
  it('before 13: `=> true`/`=> false`; the login item associations block is not read', () => {
    const m = parseLaunchctlDisabled(disabledOld);
    expect(m.get('com.apple.Siri.agent')).toBe(true);
    expect(m.get('com.docker.helper')).toBe(false);
    expect(m.has('version.com.docker.helper')).toBe(false);
    expect(m.size).toBe(15);
  });
  it('bootstrap of a disabled label: exit 119 "Service is disabled" (captured)', () => {
    expect(classifyLaunchctl(119, bootstrap119)).toEqual({
      kind: 'disabled',
      message: 'Service is disabled',
    });
  });
});

describe('sfltool dumpbtm (Background Task Management, macOS 13+)', () => {
  it('the captured record: fields and the Disposition words; `disabled` alone does not hold a job back', () => {
    const [r, ...rest] = parseDumpBtm(btmPostgres);
    expect(rest).toEqual([]);
    expect(r).toMatchObject({
      disposition: ['disabled', 'allowed', 'visible', 'not notified'],
      fields: {
        Name: 'Postgres',
        Type: 'app (0x2)',
        URL: 'file:///Applications/Postgres.app/',
        'Bundle Identifier': 'com.postgresapp.Postgres2',
      },
    });
    expect(btmDisallows([r!], 'com.postgresapp.Postgres2', '/Applications/Postgres.app/')).toBe(
      false,
    );
  });
  it('our LaunchDaemon switched off (disallowed): found by plist URL or by label, with or without the type prefix (synthesised)', () => {
    const recs = parseDumpBtm(btmDump(DISALLOWED));
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ uid: '-2', fields: { Identifier: '16.com.awg.daemon' } });
    const P = '/Library/LaunchDaemons/com.awg.daemon.plist';
    expect(btmDisallows(recs, 'com.awg.daemon', P)).toBe(true);
    expect(
      btmDisallows(parseDumpBtm(btmDump(DISALLOWED, { id: 'x', url: P })), 'com.awg.daemon', P),
    ).toBe(true);
    expect(
      btmDisallows(
        parseDumpBtm(btmDump(DISALLOWED, { id: 'com.awg.daemon', url: '(null)' })),
        'com.awg.daemon',
        P,
      ),
    ).toBe(true);
    expect(btmDisallows(parseDumpBtm(btmDump(ALLOWED)), 'com.awg.daemon', P)).toBe(false);
    expect(
      btmDisallows(
        parseDumpBtm(
          btmDump(DISALLOWED, {
            id: '16.com.other',
            url: 'file:///Library/LaunchDaemons/com.other.plist',
          }),
        ),
        'com.awg.daemon',
        P,
      ),
    ).toBe(false);
  });
});

describe('service states', () => {
  it('running (captured print of a running job): pid and state', () => {
    expect(launchdState(base, ok(''), ok(running))).toMatchObject({
      state: 'running',
      loaded: true,
      active: true,
      enabled: true,
      pid: 1076,
    });
  });
  it('installed = loaded but not running (captured exited job)', () => {
    expect(launchdState(base, ok(''), ok(exited))).toMatchObject({
      state: 'installed',
      loaded: true,
      active: false,
    });
  });
  it('not loaded = plist present, launchd does not know the job (captured exit 113)', () => {
    expect(launchdState(base, ok(''), NOT_FOUND)).toMatchObject({
      state: 'not-loaded',
      loaded: false,
      enabled: false,
    });
    // another failure (no answer) leaves "loaded" unknown instead of guessing
    expect(
      launchdState(base, ok(''), {
        code: 64,
        stdout: '',
        stderr: 'Usage: launchctl print <service-target>',
      }).loaded,
    ).toBeUndefined();
  });
  it('needs approval: the label is disabled in launchd, whatever print says', () => {
    expect(launchdState(base, ok(DISABLED_AWG), NOT_FOUND)).toMatchObject({
      state: 'needs-approval',
      enabled: false,
    });
    expect(launchdState(base, ok(disabledSystem), NOT_FOUND).state).toBe('not-loaded');
  });
  it('needs approval: switched off under Login Items (sfltool dumpbtm: disallowed), whatever launchd says', () => {
    expect(launchdState(base, ok(''), ok(exited), ok(btmDump(DISALLOWED)))).toMatchObject({
      state: 'needs-approval',
      enabled: false,
      detail: { background: expect.stringMatching(/Login Items/) },
    });
    expect(launchdState(base, ok(''), ok(running), ok(btmDump(ALLOWED)))).toMatchObject({
      state: 'running',
    });
    // sfltool refused or absent (before macOS 13): launchd alone decides
    expect(
      launchdState(base, ok(''), ok(running), { code: 1, stdout: btmDump(DISALLOWED) }).state,
    ).toBe('running');
  });
  it('precedence: not installed > needs approval > outdated > not loaded > running > installed', () => {
    expect(userState({ installed: false, disabled: true, outdated: true, active: true })).toBe(
      'not-installed',
    );
    expect(userState({ installed: true, disabled: true, outdated: true, active: true })).toBe(
      'needs-approval',
    );
    expect(userState({ installed: true, outdated: true, loaded: false })).toBe('outdated');
    expect(userState({ installed: true, loaded: false })).toBe('not-loaded');
    expect(userState({ installed: true, active: true })).toBe('running');
    expect(userState({ installed: true, active: false })).toBe('installed');
  });
});

describe('outdated', () => {
  it('ProgramArguments round-trip through the plist and the argv', () => {
    const odd: DaemonInvocation = {
      ...INV,
      stateDir: '/Library/Application Support/awg',
      socket: '/var/run/awg/awg.sock',
      metrics: '127.0.0.1:9586',
      locked: true,
      config: '/etc/awg/a&b "c".yaml',
    };
    const argv = plistProgramArguments(renderLaunchdPlist(odd))!;
    expect(argv).toEqual(daemonArgv(odd));
    expect(parseDaemonArgv(argv)).toEqual(odd);
    expect(launchdOutdated(renderLaunchdPlist(odd), CUR)).toBeUndefined();
  });
  it('another node or awg; another layout of an older awg; an argv awg never writes', () => {
    expect(launchdOutdated(renderLaunchdPlist({ ...INV, node: '/usr/local/bin/node' }), CUR)).toBe(
      'it runs /usr/local/bin/node /usr/local/lib/awg/bin/awg.js, this awg is /opt/homebrew/bin/node /usr/local/lib/awg/bin/awg.js',
    );
    // a bin whose path merely contains ours is another one
    expect(launchdOutdated(renderLaunchdPlist({ ...INV, bin: `${INV.bin}.old` }), CUR)).toMatch(
      /^it runs /,
    );
    expect(
      launchdOutdated(
        renderLaunchdPlist(INV).replace(
          '\t<key>ProcessType</key>\n\t<string>Interactive</string>\n',
          '',
        ),
        CUR,
      ),
    ).toBe('it differs from what this awg writes for the same flags');
    expect(
      launchdOutdated(
        renderLaunchdPlist(INV).replace('--max-semi-space-size=1', '--max-old-space-size=64'),
        CUR,
      ),
    ).toBe('it differs from what this awg writes for the same flags');
    expect(
      launchdOutdated(
        renderLaunchdPlist(INV).replace('<string>daemon</string>', '<string>sync</string>'),
        CUR,
      ),
    ).toMatch(/does not run `awg daemon`/);
    expect(launchdOutdated('<plist><dict/></plist>', CUR)).toBe(
      'its ProgramArguments are not what awg writes',
    );
  });
});

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function host(plist?: string) {
  const fsRoot = mkdtempSync(join(tmpdir(), 'awg-launchd-'));
  roots.push(fsRoot);
  const path = join(fsRoot, 'Library/LaunchDaemons/com.awg.daemon.plist');
  if (plist !== undefined) {
    mkdirSync(join(fsRoot, 'Library/LaunchDaemons'), { recursive: true });
    writeFileSync(path, plist);
  }
  return { fsRoot, path };
}
const PRINT = 'launchctl print system/com.awg.daemon';
const DISABLED = 'launchctl print-disabled system';
const BOOTSTRAP = 'launchctl bootstrap system /Library/LaunchDaemons/com.awg.daemon.plist';
const BOOTOUT = 'launchctl bootout system/com.awg.daemon';
const launchctlCalls = (e: ScriptedExec) =>
  e.calls
    .filter((c) => c.kind === 'mutate')
    .map((c) => c.line.replace(/^write \/.*/, 'write').replace(/^rm \/.*/, 'rm'));

describe('install / uninstall are idempotent (scripted launchctl)', () => {
  it('first install writes and bootstraps; the second changes nothing and calls no launchctl mutation', async () => {
    const h = host();
    const e1 = new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: disabledSystem });
    expect(await launchdManager.install(INV, { exec: e1, fsRoot: h.fsRoot })).toMatchObject({
      changed: true,
      path: h.path,
    });
    // the boot kill switch's plist, then the daemon's (only the daemon is bootstrapped)
    expect(launchctlCalls(e1)).toEqual(['write', 'write', BOOTSTRAP]);
    expect(readFileSync(h.path, 'utf8')).toBe(renderLaunchdPlist(INV));
    const e2 = new ScriptedExec().on(PRINT, { stdout: running });
    expect(await launchdManager.install(INV, { exec: e2, fsRoot: h.fsRoot })).toMatchObject({
      changed: false,
      path: h.path,
    });
    expect(e2.mutations).toBe(0);
    const st = await launchdManager.status(
      {
        exec: new ScriptedExec().on(PRINT, { stdout: running }).on(DISABLED, { stdout: '' }),
        fsRoot: h.fsRoot,
      },
      undefined,
      CUR,
    );
    expect(st).toMatchObject({ state: 'running', pid: 1076, outdated: false });
  });
  it('unchanged but booted out: bootstrapped again; changed and loaded: bootout, then bootstrap', async () => {
    const h = host(renderLaunchdPlist(INV));
    const e = new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: '' });
    expect((await launchdManager.install(INV, { exec: e, fsRoot: h.fsRoot })).changed).toBe(true);
    expect(launchctlCalls(e)).toEqual(['write', BOOTSTRAP]); // the boot kill switch's plist was missing
    const e2 = new ScriptedExec().on(PRINT, { stdout: running }).on(DISABLED, { stdout: '' });
    await launchdManager.install(
      { ...INV, config: '/etc/awg/other.yaml' },
      { exec: e2, fsRoot: h.fsRoot },
    );
    expect(launchctlCalls(e2)).toEqual(['write', BOOTOUT, BOOTSTRAP]);
  });
  it('a disabled label is not bootstrapped: needs approval, said as such (print-disabled, or bootstrap exit 119)', async () => {
    const h = host();
    const e = new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: DISABLED_AWG });
    await expect(launchdManager.install(INV, { exec: e, fsRoot: h.fsRoot })).rejects.toMatchObject({
      kind: 'permission',
      message:
        /is disabled \(in launchd, or switched off under Login Items\).*launchctl enable system\/com\.awg\.daemon/,
    });
    expect(launchctlCalls(e)).toEqual(['write', 'write']);
    const e2 = new ScriptedExec()
      .on(PRINT, NOT_FOUND)
      .on(DISABLED, { code: 1 })
      .on(BOOTSTRAP, { code: 119, stderr: bootstrap119 });
    await expect(
      launchdManager.install({ ...INV, config: '/x.yaml' }, { exec: e2, fsRoot: h.fsRoot }),
    ).rejects.toMatchObject({ kind: 'permission' });
    const st = await launchdManager.status(
      {
        exec: new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: DISABLED_AWG }),
        fsRoot: h.fsRoot,
      },
      undefined,
      CUR,
    );
    expect(st.state).toBe('needs-approval');
  });
  it('switched off under Login Items: status says needs approval; a failing bootstrap is explained by BTM (synthesised dumpbtm)', async () => {
    const h = host(renderLaunchdPlist(INV));
    const st = await launchdManager.status(
      {
        exec: new ScriptedExec()
          .on(PRINT, NOT_FOUND)
          .on(DISABLED, { stdout: '' })
          .on('sfltool dumpbtm', { stdout: btmDump(DISALLOWED) }),
        fsRoot: h.fsRoot,
      },
      undefined,
      CUR,
    );
    expect(st).toMatchObject({ state: 'needs-approval', disabled: true });
    const e = new ScriptedExec()
      .on(PRINT, NOT_FOUND)
      .on(DISABLED, { stdout: '' })
      .on(BOOTSTRAP, { code: 5, stderr: 'Bootstrap failed: 5: Input/output error' })
      .on('sfltool dumpbtm', { stdout: btmDump(DISALLOWED) });
    await expect(launchdManager.install(INV, { exec: e, fsRoot: h.fsRoot })).rejects.toMatchObject({
      kind: 'permission',
      message: /Login Items \(Allow in the Background\)/,
    });
    // not installed: BTM is not asked
    const none = host();
    const e2 = new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: '' });
    expect(
      (await launchdManager.status({ exec: e2, fsRoot: none.fsRoot }, undefined, CUR)).state,
    ).toBe('not-installed');
    expect(e2.calls.map((c) => c.line)).not.toContain('sfltool dumpbtm');
  });
  it("another bootstrap failure is an error naming launchd's ambiguity", async () => {
    const h = host();
    const e = new ScriptedExec()
      .on(PRINT, NOT_FOUND)
      .on(DISABLED, { stdout: '' })
      .on(BOOTSTRAP, { code: 5, stderr: 'Bootstrap failed: 5: Input/output error' });
    await expect(launchdManager.install(INV, { exec: e, fsRoot: h.fsRoot })).rejects.toMatchObject({
      kind: 'driver',
      message: /Input\/output error.*already loaded, is disabled/,
    });
  });
  it('uninstall: bootout and rm; again: nothing; bootout "No such process" (captured) = already gone', async () => {
    const h = host(renderLaunchdPlist(INV));
    const e = new ScriptedExec().on(PRINT, { stdout: running });
    expect(await launchdManager.uninstall({ exec: e, fsRoot: h.fsRoot })).toEqual({
      removed: true,
      path: h.path,
    });
    expect(launchctlCalls(e)).toEqual([BOOTOUT, 'rm']);
    expect(existsSync(h.path)).toBe(false);
    const e2 = new ScriptedExec().on(PRINT, NOT_FOUND);
    expect(await launchdManager.uninstall({ exec: e2, fsRoot: h.fsRoot })).toEqual({
      removed: false,
      path: h.path,
    });
    expect(e2.mutations).toBe(0);
    // launchd forgot the job between print and bootout
    const gone = esrch.split('\n').find((l) => l.includes('Boot-out failed: 3'))!;
    const e3 = new ScriptedExec()
      .on(PRINT, { stdout: running })
      .on(BOOTOUT, { code: 3, stderr: gone });
    expect((await launchdManager.uninstall({ exec: e3, fsRoot: h.fsRoot })).removed).toBe(true);
    const e4 = new ScriptedExec()
      .on(PRINT, { stdout: running })
      .on(BOOTOUT, { code: 5, stderr: 'Boot-out failed: 5: Input/output error' });
    await expect(launchdManager.uninstall({ exec: e4, fsRoot: h.fsRoot })).rejects.toMatchObject({
      kind: 'driver',
    });
  });
  it('status: not installed; outdated names why', async () => {
    const none = host();
    const e = new ScriptedExec().on(PRINT, NOT_FOUND).on(DISABLED, { stdout: '' });
    expect(
      (await launchdManager.status({ exec: e, fsRoot: none.fsRoot }, undefined, CUR)).state,
    ).toBe('not-installed');
    const old = host(renderLaunchdPlist({ ...INV, node: '/usr/local/bin/node' }));
    const st = await launchdManager.status({ exec: e, fsRoot: old.fsRoot }, undefined, CUR);
    expect(st).toMatchObject({
      state: 'outdated',
      detail: { outdated: expect.stringMatching(/^it runs \/usr\/local\/bin\/node/) },
    });
  });
});
