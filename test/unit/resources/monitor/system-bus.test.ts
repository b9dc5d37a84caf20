/**
 * The system-bus wake source: `busctl monitor --json=short` lines captured on a booted Debian 12
 * host (systemd 252, NetworkManager 1.42: test/fixtures/linux/dbus/) classified; the monitor
 * child restarted with backoff, given up when missing, and never outliving its parent.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startWakeSources } from '../../../../src/daemon/wakes.js';
import {
  SYSTEM_BUS_MATCHES,
  classifyBusLine,
} from '../../../../src/resources/monitor/system-bus-parse.js';
import {
  busctlMonitorCommand,
  watchSystemBus,
} from '../../../../src/resources/monitor/system-bus.js';
import type { SystemEvent, SystemWatchOptions } from '../../../../src/resources/monitor/types.js';
import { waitFor } from '../../../helpers/procs.js';

const fxPath = (f: string) =>
  fileURLToPath(new URL(`../../../fixtures/linux/dbus/${f}`, import.meta.url));
const fx = (f: string) => readFileSync(fxPath(f), 'utf8');
const events = (text: string) =>
  text.split('\n').flatMap((l) => {
    const e = classifyBusLine(l);
    return e ? [e] : [];
  });

describe('classifyBusLine on captured busctl monitor output', () => {
  it('resolved restarted, `nmcli con up`, PrepareForSleep(false)', () => {
    // systemctl restart systemd-resolved; nmcli con up 'Wired connection 1';
    // busctl emit /org/freedesktop/login1 org.freedesktop.login1.Manager PrepareForSleep b false
    expect(events(fx('busctl-monitor-restart-nmcli-resume.jsonl'))).toEqual([
      // the old owner going away (new owner '') wakes nothing; the new one does
      { kind: 'resolved', detail: 'systemd-resolved started' },
      { kind: 'network-manager', detail: 'NetworkManager: connected (local)' },
      { kind: 'network-manager', detail: 'NetworkManager: connecting' },
      { kind: 'network-manager', detail: 'NetworkManager: device 2 activated' },
      { kind: 'network-manager', detail: 'NetworkManager: connection 4 activated' },
      { kind: 'network-manager', detail: 'NetworkManager: connected (site)' },
      { kind: 'network-manager', detail: 'NetworkManager: connected (global)' },
      { kind: 'resume', detail: 'resumed from sleep' },
    ]);
  });

  it("resolved's per-link settings changed (resolvectl revert / dns on a link)", () => {
    expect(events(fx('busctl-monitor-resolved-properties.jsonl'))).toEqual([
      { kind: 'resolved-changed', detail: 'systemd-resolved: DNS changed' },
      { kind: 'resolved-changed', detail: 'systemd-resolved: DNS changed' },
    ]);
  });

  it('a DHCP lease renewed by NetworkManager', () => {
    expect(events(fx('busctl-monitor-dhcp-renew.jsonl'))).toEqual([
      { kind: 'network-manager', detail: 'NetworkManager: DHCPv4 lease changed' },
    ]);
  });

  it('ignores what does not matter or does not parse', () => {
    const sig = (o: object) => JSON.stringify({ type: 'signal', path: '/x', ...o });
    expect(classifyBusLine('Monitoring bus message stream.')).toBeUndefined();
    expect(classifyBusLine('{"type":"signal",')).toBeUndefined();
    expect(
      classifyBusLine(
        sig({
          interface: 'org.freedesktop.login1.Manager',
          member: 'PrepareForSleep',
          payload: { type: 'b', data: [true] },
        }),
      ),
    ).toBeUndefined();
    expect(
      classifyBusLine(
        sig({
          interface: 'org.freedesktop.NetworkManager.Device',
          member: 'StateChanged',
          payload: { type: 'uuu', data: [30, 110, 60] },
        }),
      ),
    ).toBeUndefined();
    expect(
      classifyBusLine(
        sig({
          path: '/org/freedesktop/resolve1',
          interface: 'org.freedesktop.DBus.Properties',
          member: 'PropertiesChanged',
          payload: {
            type: 'sa{sv}as',
            data: ['org.freedesktop.resolve1.Manager', { CacheStatistics: {} }, []],
          },
        }),
      ),
    ).toBeUndefined();
  });

  it('the monitor command carries every match rule', () => {
    const c = busctlMonitorCommand();
    expect(c.cmd).toBe('busctl');
    expect(c.args.slice(0, 3)).toEqual(['monitor', '--system', '--json=short']);
    expect(c.args.slice(3)).toEqual(SYSTEM_BUS_MATCHES.map((m) => `--match=${m}`));
  });
});

describe('watchSystemBus: the monitor child', () => {
  it('emits the events of its lines, and starts again with backoff when it ends', async () => {
    const got: SystemEvent[] = [];
    const exits: (number | undefined)[] = [];
    const w = watchSystemBus({
      onEvent: (e) => got.push(e),
      onExit: (x) => exits.push(x.restartInMs),
      backoffMs: { initial: 5, max: 20 },
      command: { cmd: 'cat', args: [fxPath('busctl-monitor-dhcp-renew.jsonl')] },
    });
    await waitFor('three monitors', () => exits.length >= 3);
    await w.close();
    expect(exits.slice(0, 3)).toEqual([5, 10, 20]);
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(got[0]).toEqual({
      kind: 'network-manager',
      detail: 'NetworkManager: DHCPv4 lease changed',
    });
  });

  it('gives up for good when the program is missing', async () => {
    const exits: { code: number | null; restartInMs: number | undefined }[] = [];
    const w = watchSystemBus({
      onEvent: () => {},
      onExit: (x) => exits.push(x),
      backoffMs: { initial: 5, max: 5 },
      command: { cmd: 'awg-no-such-busctl', args: [] },
    });
    await waitFor('the monitor to end', () => exits.length >= 1);
    await w.close();
    expect(exits).toEqual([{ code: 127, restartInMs: undefined, stderr: expect.any(String) }]);
  });

  it('close() ends the monitor', async () => {
    const exits: number[] = [];
    const w = watchSystemBus({
      onEvent: () => {},
      onExit: () => exits.push(1),
      command: { cmd: 'sh', args: ['-c', 'echo $$ > /dev/stderr; exec sleep 600'] },
    });
    await w.close();
    expect(exits).toEqual([1]);
  });

  it('the monitor dies with a parent that was SIGKILLed', async () => {
    // a parent process hosting the watch; the monitor (sleep) prints its pid first
    const src = `
      import { watchSystemBus } from ${JSON.stringify(new URL('../../../../src/resources/monitor/system-bus.ts', import.meta.url).href)};
      watchSystemBus({ onEvent() {}, command: { cmd: 'sh', args: ['-c', 'echo {\\"pid\\":$$}; exec sleep 600'] } });
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // the monitor's first line goes to the parent, not to us: find the sleep among its descendants
    const sleeper = await waitFor('the monitor to run', () =>
      descendantNamed(parent.pid!, 'sleep'),
    );
    parent.kill('SIGKILL');
    await waitFor('the monitor to end', () => !alive(sleeper));
  });
});

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \([^)]*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function descendantNamed(pid: number, comm: string): number | undefined {
  for (const c of children(pid)) {
    try {
      if (readFileSync(`/proc/${c}/comm`, 'utf8').trim() === comm) return c;
    } catch {
      /* gone */
    }
    const d = descendantNamed(c, comm);
    if (d) return d;
  }
  return undefined;
}

describe('system wakes (daemon/wakes.ts)', () => {
  it('wakes `system` with the event; resolved-changed only outside the echo window', async () => {
    let emit: SystemWatchOptions['onEvent'] = () => {};
    let echo = false;
    const wakes: [string, string, string | undefined][] = [];
    const s = await startWakeSources({
      watchConfig: false,
      onWake: (r, d, w) => wakes.push([r, d, w]),
      isEcho: () => echo,
      claims: () => ({ linkPrefix: 'awg-', routeProtocol: 167, nftTable: 'awg' }),
      watchSystem: async (o) => {
        emit = o.onEvent;
        return { close() {} };
      },
    });
    echo = true;
    emit({ kind: 'resolved-changed', detail: 'systemd-resolved: DNS changed' });
    emit({ kind: 'resolved', detail: 'systemd-resolved started' });
    echo = false;
    emit({ kind: 'resolved-changed', detail: 'systemd-resolved: DNS changed' });
    emit({ kind: 'resume', detail: 'resumed from sleep' });
    await s.close();
    expect(wakes).toEqual([
      ['system', 'systemd-resolved started', 'resolved'],
      ['system', 'systemd-resolved: DNS changed', 'resolved-changed'],
      ['system', 'resumed from sleep', 'resume'],
    ]);
  });
});
