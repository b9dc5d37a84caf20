/**
 * Sticky fallbacks (daemon/sticky.ts, `rules[].sticky`): a sticky rule whose tunnel went down
 * keeps its fallback after the tunnel is back until the network, the config or an apply ends
 * the hold; the routing readers (firewall actions, the placer, route readings, explain) see
 * the tunnel down for that rule alone. Then the daemon's tunnels with a fake engine host: the
 * events, the wake, the config read and the status line.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import type { DaemonEvent, WakeReason } from '../../../src/daemon/core.js';
import { StickyHolds, stickyRules } from '../../../src/daemon/sticky.js';
import { tunnelStatuses } from '../../../src/daemon/status.js';
import { Tunnels } from '../../../src/daemon/tunnels.js';
import { buildDesired, type HostFacts } from '../../../src/model/desired.js';
import { compileRules, effectiveRoute, tunnelUpOf } from '../../../src/model/match.js';
import { ProcessPlacer } from '../../../src/procs/placer.js';
import { parseToPlacer } from '../../../src/procs/placer-protocol.js';
import type { InprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import { eventFromWire, eventToWire } from '../../../src/daemon/wire/events.js';
import { sampleStatus } from './server-fake-core.js';

const KEY = 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=';
const raw = {
  version: 1,
  tunnels: {
    t: {
      type: 'wireguard',
      privateKey: { file: 't.key' },
      addresses: ['10.0.0.2/32'],
      peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['10.0.0.0/24'] }],
      downAfter: 3,
    },
  },
  rules: [
    {
      name: 'stable',
      match: { name: 'curl' },
      target: 't',
      fallback: 'allow-direct',
      sticky: true,
    },
    { name: 'eager', match: { name: 'wget' }, target: 't', fallback: 'allow-direct' },
    { name: 'hop', match: { name: 'ssh' }, target: 't', fallback: 'failover', sticky: true },
    { name: 'rest', match: { name: 'ssh' }, target: 'direct' },
  ],
};
const CONFIG = Config.parse(raw);
const NET_A = { gateway: '192.168.7.1', interface: 'eth0' };
const NET_B = { gateway: '10.9.0.1', interface: 'wlan0' };
const DOWN = new Set(['t']);
const UP = new Set<string>();

describe('sticky holds', () => {
  it('the sticky rules that can take a fallback', () => {
    expect([...stickyRules(CONFIG)]).toEqual([
      ['stable', 't'],
      ['hop', 't'],
    ]);
  });

  it('a hold begins when the tunnel goes down and shows once it is back; a network change ends it', () => {
    const s = new StickyHolds();
    expect(s.setNetwork(NET_A)).toEqual([]);
    expect(s.follow(CONFIG, UP, 1000)).toEqual([]);
    expect(s.follow(CONFIG, DOWN, 2000)).toEqual([]);
    // while down the fallback is taken anyway: nothing held to show
    expect(s.held).toEqual(new Set());
    const back = s.follow(CONFIG, UP, 9000);
    expect(back.map((c) => [c.type, c.hold.rule, c.hold.sinceMs])).toEqual([
      ['held', 'stable', 2000],
      ['held', 'hop', 2000],
    ]);
    expect(s.held).toEqual(new Set(['stable', 'hop']));
    // the same network (its MAC learned later) keeps the holds
    expect(s.setNetwork({ ...NET_A, mac: '02:00:00:00:00:01' })).toEqual([]);
    expect(s.follow(CONFIG, UP, 10_000)).toEqual([]);
    expect(s.held.size).toBe(2);
    const moved = s.setNetwork(NET_B);
    expect(moved.map((c) => [c.type, c.hold.rule, c.type === 'released' && c.reason])).toEqual([
      ['released', 'stable', 'network'],
      ['released', 'hop', 'network'],
    ]);
    expect(s.held).toEqual(new Set());
  });

  it('a changed config ends every hold; a rule no longer sticky ends its own', () => {
    const s = new StickyHolds();
    s.follow(CONFIG, DOWN, 1);
    s.follow(CONFIG, UP, 2);
    const notSticky = Config.parse({
      ...raw,
      rules: raw.rules.map((r) => (r.name === 'hop' ? { ...r, sticky: false } : r)),
    });
    const changed = s.follow(notSticky, UP, 3);
    expect(changed.map((c) => c.type === 'released' && [c.hold.rule, c.reason])).toEqual([
      ['stable', 'config'],
      ['hop', 'config'],
    ]);
    expect(s.held).toEqual(new Set());
    // down again under the new config: only `stable` holds
    s.follow(notSticky, DOWN, 4);
    s.follow(notSticky, UP, 5);
    expect(s.held).toEqual(new Set(['stable']));
    expect(s.releaseAll('apply').map((c) => c.type === 'released' && c.reason)).toEqual(['apply']);
  });

  it('no hold while the path is not at fault (awg stopped its own engine)', () => {
    const s = new StickyHolds();
    s.follow(CONFIG, DOWN, 1, () => false);
    expect(s.follow(CONFIG, UP, 2)).toEqual([]);
    expect(s.held).toEqual(new Set());
  });

  it('a release while the tunnel is still down changes nothing that shows: no event', () => {
    const s = new StickyHolds();
    s.setNetwork(NET_A);
    s.follow(CONFIG, DOWN, 1);
    expect(s.setNetwork(NET_B)).toEqual([]);
    expect(s.follow(CONFIG, UP, 2)).toEqual([]);
    expect(s.held).toEqual(new Set());
  });
});

describe('sticky holds across a daemon restart (the state directory)', () => {
  const held = (state: MemoryStateStore) => {
    const s = new StickyHolds(state);
    s.setNetwork(NET_A);
    s.follow(CONFIG, DOWN, 1000);
    s.follow(CONFIG, UP, 2000);
    expect(s.held).toEqual(new Set(['stable', 'hop']));
    return s;
  };

  it('the same network and config: the holds are back before the first read, and not announced again', () => {
    const state = new MemoryStateStore();
    held(state);
    const again = new StickyHolds(state);
    expect(again.held).toEqual(new Set(['stable', 'hop']));
    expect(again.list().map((h) => h.sinceMs)).toEqual([1000, 1000]);
    expect(again.setNetwork(NET_A)).toEqual([]);
    expect(again.follow(CONFIG, UP, 5000)).toEqual([]);
    expect(again.held).toEqual(new Set(['stable', 'hop']));
    // a tunnel that is down at the restart keeps the hold and shows it once up
    const third = new StickyHolds(state);
    third.follow(CONFIG, DOWN, 6000);
    expect(third.follow(CONFIG, UP, 7000).map((c) => c.type)).toEqual(['held', 'held']);
  });

  it('another network or another config at the restart ends them; none left: no record', () => {
    const state = new MemoryStateStore();
    held(state);
    const moved = new StickyHolds(state);
    expect(moved.setNetwork(NET_B).map((c) => c.type === 'released' && c.reason)).toEqual([
      'network',
      'network',
    ]);
    expect(state.keys()).not.toContain('sticky');
    expect(new StickyHolds(state).held).toEqual(new Set());

    held(state);
    const edited = Config.parse({ ...raw, rules: raw.rules.slice(0, 2) });
    const after = new StickyHolds(state);
    after.setNetwork(NET_A);
    expect(after.follow(edited, UP, 9000).map((c) => c.type === 'released' && c.reason)).toEqual([
      'config',
      'config',
    ]);
    expect(state.keys()).not.toContain('sticky');

    held(state);
    new StickyHolds(state).releaseAll('apply');
    expect(state.keys()).not.toContain('sticky');
  });

  it('a record that is not ours is set aside, and routing goes by the tunnels', () => {
    for (const bad of [
      { version: 2, network: null, config: 'x', holds: [] },
      { version: 1, network: null, config: 'x', holds: [{ rule: 'stable', tunnel: 't' }] },
      { version: 1, network: { gateway: 1 }, config: 'x', holds: [] },
      { version: 1, network: null, config: 'x', holds: 'stable' },
      'stable',
    ]) {
      const state = new MemoryStateStore();
      state.set('sticky', bad);
      expect(new StickyHolds(state).held).toEqual(new Set());
      expect(state.corrupt.map((c) => c.key)).toEqual(['sticky']);
    }
  });
});

describe('routing of a held rule', () => {
  const held = new Set(['stable']);

  it('the firewall: the held rule goes direct, the other one back into the tunnel', () => {
    const m = buildDesired(CONFIG, { down: UP, held });
    const action = (name: string) => m.policy!.apps.find((r) => r.name === name)!.action;
    expect(action('stable')).toEqual({ type: 'direct' });
    expect(action('eager')).toMatchObject({ type: 'mark' });
  });

  it('route readings: the held rule sees its tunnel down, others and unruled traffic up', () => {
    const up = tunnelUpOf(UP, held);
    const m = compileRules(CONFIG.rules);
    expect(effectiveRoute(m.failoverChain('/usr/bin/curl'), up)).toBe('direct');
    expect(effectiveRoute(m.failoverChain('/usr/bin/wget'), up)).toBe('t');
    expect(up('t')).toBe(true);
  });

  it('the placer passes a held failover rule on to the next match', () => {
    const p = new ProcessPlacer({
      matcher: compileRules(CONFIG.rules),
      cgroupRoot: 'awg',
      mount: { mountPoint: '/sys/fs/cgroup', root: '/' },
      writer: { move: () => {} } as never,
      procfs: { pids: () => [] } as never,
    });
    expect(p.placeFor('/usr/bin/ssh')?.name).toBe('hop');
    p.setDown(UP, new Set(['hop']));
    expect(p.placeFor('/usr/bin/ssh')?.name).toBe('rest');
  });

  it('the placer protocol carries the held rules, and refuses a bad list', () => {
    expect(parseToPlacer(JSON.stringify({ type: 'down', down: [], held: ['hop'] }))).toEqual({
      type: 'down',
      down: [],
      held: ['hop'],
    });
    expect(parseToPlacer(JSON.stringify({ type: 'down', down: [], held: [1] }))).toHaveProperty(
      'invalid',
    );
  });
});

describe('tunnels: sticky rules', () => {
  it('down then back: the sticky rule is held (an event, the read, status), the network moves: released and a wake', () => {
    const peer = { handshakePendingMs: 0, lastHandshakeMs: Date.now() };
    const host = {
      stats: () => [
        {
          tunnel: 't',
          up: true,
          peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', rxBytes: 0, txBytes: 0, ...peer }],
        },
      ],
      proxyStats: () => [],
      probe: () => {},
      onChange: () => () => {},
    } as unknown as InprocEngineHost;
    const events: DaemonEvent[] = [];
    const wakes: WakeReason[] = [];
    const reporter = new MemoryReporter();
    const t = new Tunnels({
      engines: host,
      host: { reporter, state: new MemoryStateStore() },
      emit: (e) => events.push(e),
      wake: (r) => wakes.push(r),
      config: () => CONFIG,
      running: () => false,
    });
    const facts = (n: typeof NET_A) => ({ cgroupNftPrefix: '', defaultRouteV4: n }) as HostFacts;
    t.readOptions().held(CONFIG, facts(NET_A));
    t.tick();
    peer.handshakePendingMs = 3_000;
    peer.lastHandshakeMs = Date.now() - 200_000;
    t.tick();
    expect(t.down).toEqual(new Set(['t']));
    peer.handshakePendingMs = 0;
    peer.lastHandshakeMs = Date.now();
    t.tick();
    expect(t.down).toEqual(new Set());
    const sticky = events.filter((e) => e.type === 'sticky');
    expect(sticky).toMatchObject([
      { rule: 'stable', tunnel: 't', held: true },
      { rule: 'hop', tunnel: 't', held: true },
    ]);
    expect(formatEvent(sticky[0]!)).toMatch(/^rule stable held on its fallback \(sticky\) since /);
    // the event survives the wire
    expect(eventFromWire(eventToWire(sticky[0]!))).toEqual(sticky[0]);
    expect(t.held).toEqual(new Set(['stable', 'hop']));
    // status: the tunnel's line names the held rules
    const engine = buildDesired(CONFIG).resources.filter((r) => r.kind === 'engine');
    const [line] = tunnelStatuses(engine, host.stats(), [], t.health);
    expect(line?.heldRules?.map((h) => h.rule)).toEqual(['hop', 'stable']);
    const text = renderDaemonStatus({ ...sampleStatus(), tunnels: [line!] });
    expect(text).toMatch(/rule stable: held on fallback \(sticky\) since \d{4}-/);
    // the same network: still held; another: released, and this read routes by the tunnel
    expect(t.readOptions().held(CONFIG, facts(NET_A))).toEqual(new Set(['stable', 'hop']));
    expect(t.readOptions().held(CONFIG, facts(NET_B))).toEqual(new Set());
    expect(events.filter((e) => e.type === 'sticky' && !e.held)).toMatchObject([
      { rule: 'stable', reason: 'network' },
      { rule: 'hop', reason: 'network' },
    ]);
    // an apply with nothing held: no event, no wake
    const n = wakes.length;
    t.releaseSticky('apply');
    expect(wakes.length).toBe(n);
  });
});

describe('awg status text', () => {
  it("a tunnel's probe failures and held rules", () => {
    const text = renderDaemonStatus(sampleStatus());
    expect(text).toContain(
      '  probe: 3 consecutive failure(s); last failure at 2026-11-22T04:59:30.000Z: tcp 10.9.0.1:80: no answer within 5000 ms\n',
    );
    expect(text).toContain(
      '  rule browser: held on fallback (sticky) since 2026-11-22T04:58:00.000Z\n',
    );
  });
});
