/**
 * awg.service among the host's services: it stops before D-Bus, resolved and NetworkManager
 * (ordering only, nothing pulled in), the packaged unit follows /etc/awg/config.yaml, and the
 * NetworkManager drop-in that keeps NM off our links is written, reloaded and removed by
 * `awg service install|uninstall` (where NM is installed) and matches what NM would match.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { systemdManager } from '../../../../src/resources/service/manager.js';
import {
  nmUnmanages,
  NM_DROPIN_NAME,
  renderNmDropin,
} from '../../../../src/resources/service/networkmanager.js';
import {
  renderSystemdUnit,
  STOP_BEFORE,
  type DaemonInvocation,
} from '../../../../src/resources/service/render.js';
import type { Exec, ExecOptions, ExecResult } from '../../../../src/util/exec.js';
import { quoteArg } from '../../../../src/util/exec.js';

const PACKAGED: DaemonInvocation = {
  node: '/usr/lib/awg/node',
  bin: '/usr/lib/awg/app/bin/awg.js',
  config: '/etc/awg/config.yaml',
};

class RecordingExec implements Exec {
  readonly dryRun = false;
  readonly log: string[] = [];
  constructor(private readonly answers: Record<string, ExecResult> = {}) {}
  get mutations(): number {
    return this.log.length;
  }
  async read(cmd: string, args: string[], _o?: ExecOptions): Promise<ExecResult> {
    const line = [cmd, ...args].map(quoteArg).join(' ');
    this.log.push(`read ${line}`);
    return this.answers[line] ?? { stdout: '', stderr: '', code: 3 };
  }
  async mutate(cmd: string, args: string[], _o?: ExecOptions): Promise<ExecResult> {
    this.log.push([cmd, ...args].map(quoteArg).join(' '));
    return { stdout: '', stderr: '', code: 0 };
  }
  record(display: string): boolean {
    this.log.push(display);
    return true;
  }
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-svc-life-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** every value of `key=` in the [Unit] section, split into words */
function unitList(unit: string, key: string): string[] {
  const section = unit.slice(0, unit.indexOf('[Service]'));
  return section
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .flatMap((l) => l.slice(key.length + 1).split(/\s+/))
    .filter(Boolean);
}

describe('awg.service stops before the services its teardown talks to', () => {
  it('After= dbus, resolved and NetworkManager (reverse start order at stop); no Wants= or Requires= of them', () => {
    const u = renderSystemdUnit(PACKAGED);
    expect(STOP_BEFORE).toEqual([
      'dbus.service',
      'systemd-resolved.service',
      'NetworkManager.service',
    ]);
    for (const s of STOP_BEFORE) {
      expect(unitList(u, 'After')).toContain(s);
      for (const k of ['Wants', 'Requires', 'Requisite', 'BindsTo', 'PartOf'])
        expect(unitList(u, k)).not.toContain(s);
    }
    // still started early (before any network is configured) and never ordered Before= them
    expect(unitList(u, 'After')).toContain('network-pre.target');
    expect(unitList(u, 'Before')).toEqual([]);
  });

  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
  it.skipIf(!analyze && process.env.CI !== 'true')(
    'systemd-analyze verify accepts the packaged unit beside stand-ins of those services (no ordering cycle)',
    () => {
      if (!analyze)
        throw new Error('systemd-analyze is missing: install systemd (scripts/setup.sh does)');
      const d = tmp();
      const unit = join(d, 'awg.service');
      writeFileSync(
        unit,
        renderSystemdUnit({
          ...PACKAGED,
          node: process.execPath,
          bin: fileURLToPath(new URL('../../../../bin/awg.js', import.meta.url)),
        }),
      );
      // the stand-ins order themselves as Debian's units do (NM and resolved before network.target)
      const stub = (name: string, extra: string) =>
        writeFileSync(
          join(d, name),
          `[Unit]\nDescription=stand-in\n${extra}\n[Service]\nExecStart=/bin/true\n`,
        );
      stub('dbus.service', 'After=dbus.socket');
      stub(
        'systemd-resolved.service',
        'DefaultDependencies=no\nBefore=network.target nss-lookup.target',
      );
      stub(
        'NetworkManager.service',
        'After=network-pre.target dbus.service\nBefore=network.target',
      );
      const r = spawnSync(analyze!, ['verify', unit, ...STOP_BEFORE.map((s) => join(d, s))], {
        encoding: 'utf8',
        env: { ...process.env, SYSTEMD_UNIT_PATH: `${d}:` },
      });
      expect(r.stderr.split('\n').filter((l) => /cycle|awg\.service/i.test(l))).toEqual([]);
      expect(r.status).toBe(0);
    },
  );

  it('enabling awg.service enables the boot kill switch with it (Also=)', () => {
    expect(renderSystemdUnit(PACKAGED).split('\n')).toContain('Also=awg-killswitch.service');
  });

  it('the packaged unit follows /etc/awg/config.yaml', () => {
    expect(renderSystemdUnit(PACKAGED)).toMatch(
      /^ExecStart=\/usr\/lib\/awg\/node .* \/usr\/lib\/awg\/app\/bin\/awg\.js daemon --config \/etc\/awg\/config\.yaml$/m,
    );
  });
});

describe('NetworkManager drop-in', () => {
  it("appends awg's TUN and ifb prefixes to keyfile's unmanaged-devices", () => {
    expect(renderNmDropin()).toMatch(
      /^\[keyfile\]\nunmanaged-devices\+=interface-name:awg-\*;interface-name:awgq-\*\n$/m,
    );
    expect(() => renderNmDropin(['awg;x'])).toThrow(/cannot be written/);
  });

  it('nmUnmanages: interface-name globs, exact `=`, a bare `*`, other specs ignored', () => {
    const ours = renderNmDropin().match(/unmanaged-devices\+=(.*)/)![1]!;
    expect(nmUnmanages(ours, 'awg-vpn')).toBe(true);
    expect(nmUnmanages(ours, 'awgq-1a2b3c4')).toBe(true);
    expect(nmUnmanages(ours, 'eth0')).toBe(false);
    expect(nmUnmanages('mac:00:11:22:33:44:55,interface-name:wg?', 'wg0')).toBe(true);
    expect(nmUnmanages('interface-name:=awg-*', 'awg-vpn')).toBe(false);
    expect(nmUnmanages('interface-name:=awg-*', 'awg-*')).toBe(true);
    expect(nmUnmanages('type:wireguard', 'awg-vpn')).toBe(false);
    expect(nmUnmanages('*', 'anything')).toBe(true);
    expect(nmUnmanages('', 'awg-vpn')).toBe(false);
  });

  it('install writes it where NM is installed and reloads a running NM; uninstall removes it and reloads again', async () => {
    const fsRoot = tmp();
    mkdirSync(join(fsRoot, 'etc/NetworkManager'), { recursive: true });
    const path = join(fsRoot, 'etc/NetworkManager/conf.d', NM_DROPIN_NAME);
    const active = {
      'systemctl is-active --quiet NetworkManager.service': { stdout: '', stderr: '', code: 0 },
    };
    // the running manager (recorded, not run), its files under a temp tree
    const exec = new RecordingExec(active);
    await systemdManager.install(PACKAGED, { exec, fsRoot });
    expect(readFileSync(path, 'utf8')).toBe(renderNmDropin());
    expect(exec.log).toContain('nmcli general reload conf');
    // written after the units, told before the daemon starts
    expect(exec.log.indexOf('nmcli general reload conf')).toBeLessThan(
      exec.log.indexOf('systemctl enable --now awg.service'),
    );
    // unchanged: NM is not told again
    const again = new RecordingExec(active);
    await systemdManager.install(PACKAGED, { exec: again, fsRoot });
    expect(again.log.filter((l) => l.includes('NetworkManager') || l.startsWith('nmcli'))).toEqual(
      [],
    );

    const down = new RecordingExec(active);
    await systemdManager.uninstall({ exec: down, fsRoot });
    expect(existsSync(path)).toBe(false);
    expect(down.log).toContain('nmcli general reload conf');

    // NM not running: the file is written, nobody is told (NM reads it when it starts)
    const idle = new RecordingExec();
    await systemdManager.install(PACKAGED, { exec: idle, fsRoot });
    expect(existsSync(path)).toBe(true);
    expect(idle.log.filter((l) => l.startsWith('nmcli'))).toEqual([]);
  });

  it('uninstall --root removes the drop-in with the units; a tree without NetworkManager gets none', async () => {
    const root = tmp();
    mkdirSync(join(root, 'etc/NetworkManager'), { recursive: true });
    const exec = new RecordingExec();
    await systemdManager.install(PACKAGED, { exec, root });
    const path = join(root, 'etc/NetworkManager/conf.d', NM_DROPIN_NAME);
    expect(existsSync(path)).toBe(true);
    await systemdManager.uninstall({ exec, root });
    expect(existsSync(path)).toBe(false);
    expect(exec.log).toContain(`rm ${path}`);

    const bare = tmp();
    await systemdManager.install(PACKAGED, { exec: new RecordingExec(), root: bare });
    expect(existsSync(join(bare, 'etc/NetworkManager'))).toBe(false);
  });

  it('`awg service install --print` shows the drop-in after the units (build-deb.sh puts *.conf in NM conf.d)', () => {
    const text = systemdManager.render(PACKAGED);
    expect(text).toContain(`\n# ---- ${NM_DROPIN_NAME} ----\n${renderNmDropin()}`);
    expect(text.trimEnd().endsWith(renderNmDropin().trimEnd())).toBe(true);
  });
});
