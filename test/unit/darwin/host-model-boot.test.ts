/**
 * The kill switch from boot on the macOS host model (Linux: test/netns/killswitch-boot.test.ts).
 * The real daemon applies a config with the kill switch through the API; the state directory
 * then holds the boot copy (platform/darwin/pf-boot.ts), and `/Library/LaunchDaemons` the
 * LaunchDaemon `awg service install` writes (com.awg.killswitch). The model reboots: PF and
 * every run-time route and utun are gone, launchd runs the RunAtLoad jobs (the boot job's argv
 * interpreted: test -f, then `pfctl -E -f`).
 *
 * - Before the daemon has started, everything but the endpoint is blocked; the daemon then
 *   converges, releases the boot job's reference (its token from the job's log) and keeps its
 *   own; `down` restores the host and removes the boot copy; the next boot loads nothing.
 * - With the kill switch off no boot copy is kept, and a reboot leaves PF alone.
 * - macOS loads /etc/pf.conf at startup too, and launchd orders nothing: if that load comes
 *   after the boot job it drops our hook, and the host is open until the daemon converges.
 *   Pinned here as it is (known gap, docs/platform-macos.md).
 * Verified on the model only: no Mac has booted with it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/cli/commands/apply.js';
import { downCommand } from '../../../src/cli/commands/down.js';
import {
  BOOT_ANCHOR_FILE,
  BOOT_CONF_FILE,
  BOOT_LOG_FILE,
} from '../../../src/platform/darwin/pf-boot.js';
import { renderKillSwitchLaunchdPlist } from '../../../src/resources/service/render.js';
import { capturingCli, servingModelDaemon } from '../../helpers/macos-host/daemon.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';
import { DNS_OUT, ENDPOINT_UDP, macConfig, WEB } from '../../helpers/macos-host/scenario.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PLIST = '/Library/LaunchDaemons/com.awg.killswitch.plist';

async function rig(yaml = macConfig()) {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-boot-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, yaml, { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const host = MacHost.laptop();
  // what `awg service install --state-dir <stateDir>` leaves in /Library/LaunchDaemons
  host.files.set(PLIST, renderKillSwitchLaunchdPlist({ stateDir }));
  const prior = host.snapshot() as Record<string, unknown>;
  const { io, run } = capturingCli();
  const start = async (o: { configPath?: boolean } = {}) => {
    const m = await servingModelDaemon(host, {
      dir,
      stateDir,
      ...(o.configPath ? { configPath: file } : {}),
    });
    cleanups.push(m.stop);
    return m;
  };
  const at = (f: string) => join(stateDir, f);
  /** the host as a user compares it, launchd's loaded jobs aside (a boot loads every plist) */
  const same = () => {
    const { launchd: _l, ...now } = host.snapshot() as Record<string, unknown>;
    const { launchd: _p, ...was } = prior;
    return expect(now).toEqual(was);
  };
  return { dir, file, stateDir, host, run, io, start, at, same };
}

describe('macOS host model: the kill switch from boot', () => {
  it('closed from boot until the daemon converges; the boot reference handed over; down removes the boot copy and the next boot loads nothing', async () => {
    const r = await rig();
    const first = await r.start();
    expect(
      (await r.run(() => applyCommand(r.io, { file: r.file, socket: first.socket }))).code,
    ).toBe(0);
    // the boot copy: the main ruleset with our hook and our anchor from its file
    expect(readFileSync(r.at(BOOT_CONF_FILE), 'utf8')).toContain(
      `anchor "com.awg/*"\nload anchor "com.awg/awg" from "${r.at(BOOT_ANCHOR_FILE)}"\n`,
    );
    expect(readFileSync(r.at(BOOT_ANCHOR_FILE), 'utf8')).toMatch(/^# unbound awg_home: pass /m);
    // shutdown: launchd stops the daemon (SIGTERM: the tunnel goes, the kill switch and its boot copy stay)
    expect((await first.d.stop()).keptFirewall).toBe(true);
    expect(existsSync(r.at(BOOT_CONF_FILE))).toBe(true);

    r.host.reboot({ pfConfLoad: 'before' });
    // no daemon yet: PF runs under the boot job's reference, everything but the endpoint blocked
    expect(r.host.interfaces.has('utun0')).toBe(false);
    expect(r.host.pf.enabled).toBe(true);
    const bootToken = [...r.host.pf.refs.keys()];
    expect(bootToken).toHaveLength(1);
    expect(readFileSync(r.at(BOOT_LOG_FILE), 'utf8')).toContain(`Token : ${bootToken[0]}\n`);
    expect(pfVerdict(r.host, WEB)).toBe('block');
    expect(pfVerdict(r.host, DNS_OUT)).toBe('block');
    expect(pfVerdict(r.host, ENDPOINT_UDP)).toBe('pass');

    // launchd starts the daemon: it converges, takes its own reference and releases the boot job's
    const second = await r.start({ configPath: true });
    expect(await second.finished(1)).toMatchObject({ reason: 'start', outcome: 'converged' });
    expect(r.host.interfaces.has('utun0')).toBe(true);
    expect(pfVerdict(r.host, { ...WEB, iface: 'utun0' })).toBe('pass');
    expect(pfVerdict(r.host, WEB)).toBe('block');
    const refs = [...r.host.pf.refs.keys()];
    expect(refs).toHaveLength(1);
    expect(refs).not.toContain(bootToken[0]);
    expect(existsSync(r.at(BOOT_LOG_FILE))).toBe(false);
    expect(r.host.log.map((l) => l.line)).toContain(`pfctl -X ${bootToken[0]}`);

    // down: the host as before, the boot copy gone
    expect((await r.run(() => downCommand(r.io, { socket: second.socket }))).code).toBe(0);
    r.same();
    for (const f of [BOOT_CONF_FILE, BOOT_ANCHOR_FILE]) expect(existsSync(r.at(f))).toBe(false);
    await second.stop();

    // the next boot: the job finds no boot copy and does nothing
    r.host.reboot({ pfConfLoad: 'before' });
    expect(r.host.pf.enabled).toBe(false);
    expect(r.host.pf.refs.size).toBe(0);
    expect(pfVerdict(r.host, WEB)).toBe('pass');
    r.same();
  });

  it('kill switch off: no boot copy is kept; a reboot leaves PF disabled', async () => {
    const r = await rig(macConfig({ killSwitch: false }));
    const d = await r.start();
    expect((await r.run(() => applyCommand(r.io, { file: r.file, socket: d.socket }))).code).toBe(
      0,
    );
    for (const f of [BOOT_CONF_FILE, BOOT_ANCHOR_FILE]) expect(existsSync(r.at(f))).toBe(false);
    await d.stop();
    r.host.reboot({ pfConfLoad: 'before' });
    expect(r.host.pf.enabled).toBe(false);
  });

  it('macOS’s own load of /etc/pf.conf after the boot job drops our hook: open until the daemon converges (known gap)', async () => {
    const r = await rig();
    const first = await r.start();
    expect(
      (await r.run(() => applyCommand(r.io, { file: r.file, socket: first.socket }))).code,
    ).toBe(0);
    await first.stop();
    r.host.reboot({ pfConfLoad: 'after' });
    // PF enabled and our anchor loaded, but the main ruleset no longer evaluates it
    expect(r.host.pf.enabled).toBe(true);
    expect(r.host.pf.anchors.get('com.awg/awg')?.length).toBeGreaterThan(0);
    expect(r.host.pf.main).not.toContain('anchor "com.awg/*" all');
    expect(pfVerdict(r.host, WEB)).toBe('pass');
    // the daemon repairs it when it converges
    const second = await r.start({ configPath: true });
    expect(await second.finished(1)).toMatchObject({ outcome: 'converged' });
    expect(pfVerdict(r.host, WEB)).toBe('block');
    expect((await r.run(() => downCommand(r.io, { socket: second.socket }))).code).toBe(0);
    r.same();
  });
});
