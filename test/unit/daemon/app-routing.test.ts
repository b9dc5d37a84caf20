/**
 * Per-app routing without a daemon: on a cgroup platform (Linux) `awg exec` needs no daemon
 * and rules are not counted by a router; on the flow router's (macOS) placement is the
 * router's state and `awg exec` goes to it; ListProcesses asks the process table with the
 * tunnels' health. No placer child is started (placement off).
 */
import { describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { AppRouting } from '../../../src/daemon/app-routing.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import type { PerApp, ProcessLister } from '../../../src/procs/list.js';
import { MemoryStateStore } from '../../../src/util/state.js';

function make(perApp: PerApp | undefined, processes?: ProcessLister) {
  const events: DaemonEvent[] = [];
  const down = new Set(['vpn']);
  const r = new AppRouting({
    placement: false,
    ...(processes ? { processes } : {}),
    state: new MemoryStateStore(),
    perApp: () => perApp,
    down: () => down,
    proxyDialer: () => undefined,
    physical: () => 'en0',
    emit: (e) => events.push(e),
  });
  return { r, events };
}

const config = { rules: [], tunnels: {}, default: 'direct' } as unknown as Config;
const claims = { cgroupRoot: 'awg' } as never;

describe('per-app routing', () => {
  it('cgroups (Linux): awg exec is refused here, rules are counted by the firewall, placement off', async () => {
    const { r } = make('cgroup');
    expect(() => r.routeExec(1, { tunnel: 'vpn' }, () => {})).toThrow(
      /on Linux awg exec places itself in a cgroup and needs no daemon$/,
    );
    expect(r.ruleTraffic).toBeUndefined();
    expect(r.status()).toMatchObject({ state: 'off' });
    // a run with placement off: nothing to start, nothing to stop
    await r.before(config);
    await r.after({ config, claims }, true);
    await r.stopPlacement();
    await r.close();
  });

  it('the flow router (macOS): placement is its state, rules are counted there, awg exec goes to it', () => {
    const { r } = make('flow-router');
    expect(r.status()).toMatchObject({ state: 'off' });
    expect(r.ruleTraffic?.()).toEqual(new Map());
    // no router runs (nothing applied): the router says why
    expect(() => r.routeExec(1, { tunnel: 'vpn' }, () => {})).toThrow(/flow router/);
  });

  it('ListProcesses: the process table, with the tunnels that are down', async () => {
    const seen: { root: string; up: boolean }[] = [];
    const lister: ProcessLister = {
      list: (_c, root, o) => {
        seen.push({ root, up: o.tunnelUp('vpn') });
        return [];
      },
    };
    const { r } = make('cgroup', lister);
    expect(await r.listProcesses({ config, claims })).toEqual([]);
    expect(seen).toEqual([{ root: 'awg', up: false }]);
  });
});
