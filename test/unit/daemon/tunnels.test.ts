/**
 * The daemon's tunnels without a daemon (a fake engine host whose events and stats the test
 * drives): adoption on the first run only, the underlay each run probed, the kick after a
 * network move, engine events as daemon events and wakes, health ticks that stop with the
 * daemon.
 */
import { describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import type { DaemonEvent, WakeReason } from '../../../src/daemon/core.js';
import { Tunnels } from '../../../src/daemon/tunnels.js';
import type { HostFacts } from '../../../src/model/desired.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import type {
  EngineChange,
  InprocEngineHost,
  Underlay,
} from '../../../src/resources/engine/inproc.js';
import { MemoryReporter } from '../../../src/util/reporter.js';

function fake(o: { adopt?: () => Promise<string[]> } = {}) {
  const listeners = new Set<(c: EngineChange) => void>();
  const calls = { adopt: 0, kick: 0, closed: 0, underlays: [] as Underlay[] };
  const host: InprocEngineHost = {
    driver: {} as InprocEngineHost['driver'],
    adopt: async () => (calls.adopt++, (o.adopt ?? (async () => []))()),
    stats: () => [],
    proxyStats: () => [],
    onChange: (l) => (listeners.add(l), () => listeners.delete(l)),
    probe: () => {},
    kick: () => void calls.kick++,
    setUnderlay: (u) => void calls.underlays.push(u),
    closeAll: async () => void calls.closed++,
    tunnels: () => [],
  };
  const fire = (c: EngineChange) => listeners.forEach((l) => l(c));
  return { host, calls, fire, listeners };
}

/** a config with one proxy tunnel (its health comes from engine `health` events) */
const CONFIG = {
  tunnels: { px: { type: 'socks5', server: '127.0.0.1:1080' } },
  rules: [],
} as unknown as Config;
const facts = (v4?: string): { facts: HostFacts } => ({
  facts: (v4 ? { defaultRouteV4: { interface: v4 } } : {}) as HostFacts,
});

function make(o: { adopt?: () => Promise<string[]>; running?: boolean; config?: Config } = {}) {
  const f = fake(o);
  const events: DaemonEvent[] = [];
  const wakes: WakeReason[] = [];
  const reporter = new MemoryReporter();
  const t = new Tunnels({
    engines: f.host,
    host: { reporter },
    emit: (e) => events.push(e),
    wake: (r) => wakes.push(r),
    config: () => o.config,
    running: () => o.running ?? false,
  });
  return { t, f, events, wakes, reporter };
}
const ctx = {} as ApplyContext;
const desired = { resources: [], warnings: [] };

describe('tunnels', () => {
  it("adopts awg apply's engines on the first run only, and says which", async () => {
    const { t, f, reporter } = make({ adopt: async () => ['vpn'] });
    await t.beforeRun({ desired, ...facts('eth0') }, ctx);
    await t.beforeRun({ desired, ...facts('eth0') }, ctx);
    expect(f.calls.adopt).toBe(1);
    expect(reporter.events).toEqual([
      { type: 'info', message: 'adopted engine(s) vpn from awg apply' },
    ]);
  });

  it('an adoption that fails is an error event, not a failed run', async () => {
    const { t, events } = make({ adopt: () => Promise.reject(new Error('uapi gone')) });
    await t.beforeRun({ desired, ...facts() }, ctx);
    expect(events).toEqual([
      {
        type: 'error',
        at: expect.any(String),
        kind: 'bug',
        message: 'adopting engines: uapi gone',
      },
    ]);
  });

  it('each run points the engines at the underlay it probed', async () => {
    const { t, f } = make();
    expect(t.physical()).toBeUndefined();
    await t.beforeRun({ desired, ...facts('wlan0') }, ctx);
    expect(f.calls.underlays).toEqual([{ v4: 'wlan0' }]);
    expect(t.physical()).toBe('wlan0');
    await t.beforeRun({ desired, ...facts() }, ctx);
    expect(f.calls.underlays.at(-1)).toEqual({});
    expect(t.physical()).toBeUndefined();
  });

  it('a network move kicks the engines once, after the next loop run', () => {
    const { t, f } = make();
    t.kickIfMoved();
    expect(f.calls.kick).toBe(0);
    t.networkMoved();
    t.networkMoved();
    t.kickIfMoved();
    t.kickIfMoved();
    expect(f.calls.kick).toBe(1);
  });

  it('engine events: handshakes are events, an endpoint change or a stop outside a run wakes the loop', () => {
    const { t, f, events, wakes } = make();
    t.start(0);
    f.fire({ type: 'handshake', tunnel: 'vpn', peer: 'K', initiator: true });
    f.fire({ type: 'endpoint', tunnel: 'vpn', peer: 'K', endpoint: '10.0.0.9:51820' });
    f.fire({ type: 'stopped', tunnel: 'vpn', reason: 'exited' });
    f.fire({ type: 'started', tunnel: 'vpn' });
    expect(events).toEqual([
      { type: 'handshake', at: expect.any(String), tunnel: 'vpn', peer: 'K' },
    ]);
    expect(wakes).toEqual(['engine', 'engine']);
  });

  it("an engine that stops during a run is the run's doing: no wake", () => {
    const { t, f, wakes } = make({ running: true });
    t.start(0);
    f.fire({ type: 'stopped', tunnel: 'vpn', reason: 'exited' });
    expect(wakes).toEqual([]);
  });

  it("a proxy's health: transitions are tunnel events, a change of the down set wakes the loop; refused credentials are an error", () => {
    const { t, f, events, wakes } = make({ config: CONFIG });
    t.start(0);
    f.fire({ type: 'health', tunnel: 'px', state: 'up' });
    f.fire({ type: 'health', tunnel: 'px', state: 'auth-failed', error: '403' });
    expect(events.map((e) => e.type)).toEqual(['tunnel', 'error', 'tunnel']);
    expect(events[1]).toMatchObject({
      kind: 'permission',
      message: expect.stringMatching(/^tunnel px: the proxy refused our credentials: 403/),
    });
    expect(events[2]).toMatchObject({ tunnel: 'px', state: 'auth-failed' });
    expect(t.down.has('px')).toBe(true);
    expect(wakes).toEqual(['engine']);
  });

  it('stopped: no more health ticks; close closes the engines and stops following them', async () => {
    const { t, f, events } = make({ config: CONFIG });
    t.start(0);
    t.stopHealth();
    f.fire({ type: 'health', tunnel: 'px', state: 'up' });
    expect(events).toEqual([]);
    await t.close();
    expect(f.calls.closed).toBe(1);
    expect(f.listeners.size).toBe(0);
  });
});
