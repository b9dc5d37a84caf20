/**
 * Fallback policies as tunnel health changes, against the real product (`awg daemon` from
 * dist/ with the proc connector as fd 3), in the topology of perapp-topology.ts. Four apps,
 * each placed by a rule targeting t1 (downAfter 3 s, persistentKeepalive 1):
 *   ad → allow-direct, bl → block, fo → failover (its next match, fo-b, targets t2 and
 *   fails over too), dr → drop.
 * - peer1 up: ad, bl, fo go through t1; dr never passes;
 * - `awg down` of peer1: once the daemon counts t1 down, ad goes direct, bl gets nothing,
 *   fo is moved to fo-b and goes through t2 (same process), dr still nothing; an
 *   `awg exec --tunnel t1` app gets nothing and none of its packets leave in clear;
 * - peer2 stopped too: fo has no rule left and is blocked (back in fo-a, whose cgroup drops);
 *   peer2 back: fo through t2 again;
 * - peer1 applied again: t1 up, everything returns (fo moved back to fo-a);
 * - in each steady phase, tcpdump on the underlay and both TUNs: every packet of each app's
 *   flow is on its path's interface and on no other; across the whole test (transitions
 *   included) none of dr's flow anywhere.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  flowPackets,
  parseProbes,
  pathOf,
  showRun,
  startAgent,
  startCapture,
  startDaemon,
  type Agent,
  type Capture,
  type Daemon,
  type Path,
  type PerAppTopology,
} from './perapp-topology.js';
import { cgroupOf } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'ping']);

type AppName = 'ad' | 'bl' | 'fo' | 'dr';
const APPS: AppName[] = ['ad', 'bl', 'fo', 'dr'];
/** each app's own server port, so its flow can be told apart in the captures */
const PORT: Record<AppName, number> = { ad: 8001, bl: 8002, fo: 8003, dr: 8004 };

describe.skipIf(skip)('fallback policies follow tunnel health (daemon, process watcher)', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let d: Daemon | undefined;
  const agents = {} as Record<AppName, Agent>;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology();
    ce = makeAwgEnv();
    const dir = (n: string) => `${t.apps.appsDir}/${n}`;
    const cfg = join(ce.dir, 'client.yaml');
    writeFileSync(
      cfg,
      `version: 1
${clientTunnels(t.keys, { keepalive: 1, extra: '    downAfter: 3\n' })}rules:
  - name: ad
    match: { dir: ${dir('ad')} }
    target: t1
    fallback: allow-direct
  - name: bl
    match: { dir: ${dir('bl')} }
    target: t1
    fallback: block
  - name: fo-a
    match: { dir: ${dir('fo')} }
    target: t1
    fallback: failover
  - name: fo-b
    match: { dir: ${dir('fo')} }
    target: t2
    fallback: failover
  - name: dr
    match: { dir: ${dir('dr')} }
    target: t1
    fallback: drop
default: direct
`,
    );
    d = await startDaemon(t.client, ce, cfg);
  }, 240_000);

  afterAll(async () => {
    for (const a of Object.values(agents)) await a.stop();
    await d?.stop();
    if (t && ce)
      await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
        () => undefined,
      );
    await t?.destroy();
    cleanupAwgEnv(ce);
  }, 120_000);

  const health = async (tunnel: string): Promise<string | undefined> => {
    const r = await d!.cli(['status', '--json']);
    if (r.code !== 0) return undefined;
    return r
      .json<{ tunnels: { name: string; health?: string }[] }>()
      .tunnels.find((x) => x.name === tunnel)?.health;
  };
  /** each app's path for a UDP and a TCP probe, all apps and both probes at once */
  const paths = async (): Promise<Record<AppName, [Path, Path]>> => {
    const one = async (n: AppName): Promise<[Path, Path]> => {
      const [u, c] = await Promise.all([
        agents[n].probe(`udp:${PORT[n]}`),
        agents[n].probe(`tcp:${PORT[n]}`),
      ]);
      return [u.ok ? pathOf(u.from) : 'none', c.ok ? pathOf(c.from) : 'none'];
    };
    const r = await Promise.all(APPS.map(async (n) => [n, await one(n)] as const));
    return Object.fromEntries(r) as Record<AppName, [Path, Path]>;
  };
  const both = (p: Path): [Path, Path] => [p, p];
  /**
   * All apps probe at once (UDP, then TCP) under fresh captures: each takes `want`, and every
   * packet of its flow is on that path's interface and on no other (none anywhere for 'none').
   */
  const steady = async (want: Record<AppName, Path>): Promise<void> => {
    const ifOf = (p: Path) =>
      p === 't1' ? 'awg-t1' : p === 't2' ? 'awg-t2' : p === 'direct' ? t.clientIf : undefined;
    const caps: Capture[] = [];
    try {
      for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
        caps.push(await startCapture(t.client, i, ce.dir));
      const got = await paths();
      expect(got).toEqual(Object.fromEntries(APPS.map((n) => [n, both(want[n])])));
      const pk = Object.fromEntries(
        await Promise.all(caps.splice(0).map(async (c) => [c.iface, await c.stop()] as const)),
      );
      for (const n of APPS) {
        const counts = Object.fromEntries(
          Object.entries(pk).map(([i, p]) => [i, flowPackets(p, PORT[n]).length]),
        );
        const home = ifOf(want[n]);
        if (home) expect(counts[home], `${n}: ${JSON.stringify(counts)}`).toBeGreaterThanOrEqual(4);
        expect({ app: n, ...counts, ...(home ? { [home]: 'its path' } : {}) }).toEqual({
          app: n,
          [t.clientIf]: 0,
          'awg-t1': 0,
          'awg-t2': 0,
          ...(home ? { [home]: 'its path' } : {}),
        });
      }
    } finally {
      for (const c of caps) await c.stop().catch(() => undefined);
    }
  };
  const inCgroup = (n: AppName, rule: string) =>
    cgroupOf(agents[n].pid) === `/${ce.cgroupRoot}/${rule}`;

  it('stop peer1: allow-direct goes direct, block is cut, failover moves to t2 (blocked once t2 stops too), drop never passes; restore: they return', async () => {
    for (const n of APPS) agents[n] = await startAgent(t.client, t.apps.app(n), t.apps.script);
    for (const [n, rule] of [
      ['ad', 'ad'],
      ['bl', 'bl'],
      ['fo', 'fo-a'],
      ['dr', 'dr'],
    ] as const)
      await eventually(
        () => inCgroup(n, rule),
        `app ${n} placed in ${rule} (it is in ${cgroupOf(agents[n].pid)})`,
      );
    await eventually(
      async () => pathOf((await agents.bl.probe('udp:8008')).from) === 't1',
      'a first packet through t1',
      60_000,
    );
    await eventually(async () => (await health('t1')) === 'up', 't1 up');

    const caps: Capture[] = [];
    for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
      caps.push(await startCapture(t.client, i, ce.dir));
    try {
      // phase 1: t1 up
      await steady({ ad: 't1', bl: 't1', fo: 't1', dr: 'none' });

      // phase 2: peer1 stopped; traffic from bl keeps the engine trying (data waits for a handshake)
      await t.stopPeer(1);
      await eventually(
        async () => {
          await agents.bl.probe('udp:8008');
          return (await health('t1')) === 'down';
        },
        'the daemon counts t1 down',
        120_000,
      );
      await eventually(
        () => inCgroup('fo', 'fo-b'),
        `failover app moved to fo-b (it is in ${cgroupOf(agents.fo.pid)})`,
        60_000,
      );
      // the firewall switch follows the health change in a reconcile: wait for it, then all at once
      await eventually(
        async () => pathOf((await agents.ad.probe(`udp:${PORT.ad}`)).from) === 'direct',
        'allow-direct app goes direct',
        60_000,
      );
      await steady({ ad: 'direct', bl: 'none', fo: 't2', dr: 'none' });
      const listed = (await d!.cli(['processes', '--json'])).json<
        { pid: number; rule?: string; route: string }[]
      >();
      const route = (n: AppName) => listed.find((p) => p.pid === agents[n].pid);
      expect(route('ad'), JSON.stringify(listed)).toMatchObject({ rule: 'ad', route: 'direct' });
      expect(route('bl'), JSON.stringify(listed)).toMatchObject({ rule: 'bl', route: 'blocked' });
      expect(route('fo'), JSON.stringify(listed)).toMatchObject({ rule: 'fo-b', route: 't2' });
      expect(route('dr'), JSON.stringify(listed)).toMatchObject({ rule: 'dr', route: 'blocked' });
      // awg exec --tunnel t1 while t1 is down gets nothing, and nothing of it leaves in clear
      const exCaps: Capture[] = [];
      try {
        for (const i of [t.clientIf, 'awg-t2'])
          exCaps.push(await startCapture(t.client, i, ce.dir));
        const ex = await awgd(t.client, ce, [
          'exec',
          '--tunnel',
          't1',
          '--state-dir',
          ce.stateDir,
          '--',
          t.apps.app('ex'),
          t.apps.script,
          'udp:8005',
          'tcp:8005',
        ]);
        expect(ex.code, showRun(ex)).toBe(0);
        expect(
          parseProbes(ex.stdout).map((x) => (x.ok ? pathOf(x.from) : 'none')),
          showRun(ex),
        ).toEqual(['none', 'none']);
        const pk = await Promise.all(
          exCaps
            .splice(0)
            .map(async (c) => [c.iface, flowPackets(await c.stop(), 8005).length] as const),
        );
        expect(Object.fromEntries(pk)).toEqual({ [t.clientIf]: 0, 'awg-t2': 0 });
      } finally {
        for (const c of exCaps) await c.stop().catch(() => undefined);
      }

      // phase 2b: peer2 stopped too: the failover chain has no rule left, so fo is blocked
      await t.stopPeer(2);
      await eventually(
        async () => {
          await agents.fo.probe('udp:8008');
          return (await health('t2')) === 'down';
        },
        'the daemon counts t2 down',
        120_000,
      );
      await eventually(
        () => inCgroup('fo', 'fo-a'),
        `failover app with no rule left back in fo-a (it is in ${cgroupOf(agents.fo.pid)})`,
        60_000,
      );
      await eventually(
        async () => !(await agents.fo.probe(`udp:${PORT.fo}`)).ok,
        'failover app blocked',
        60_000,
      );
      await steady({ ad: 'direct', bl: 'none', fo: 'none', dr: 'none' });
      const fo = (await d!.cli(['processes', '--json']))
        .json<{ pid: number; rule?: string; route: string }[]>()
        .find((p) => p.pid === agents.fo.pid);
      expect(fo, JSON.stringify(fo)).toMatchObject({ rule: 'fo-a', route: 'blocked' });
      await t.startPeer(2);
      await eventually(async () => (await health('t2')) === 'up', 't2 up again', 120_000);
      await eventually(
        () => inCgroup('fo', 'fo-b'),
        `failover app in fo-b again (it is in ${cgroupOf(agents.fo.pid)})`,
        60_000,
      );
      await eventually(
        async () => pathOf((await agents.fo.probe(`udp:${PORT.fo}`)).from) === 't2',
        'failover app through t2 again',
        60_000,
      );

      // phase 3: peer1 back
      await t.startPeer(1);
      await eventually(
        async () => (await health('t1')) === 'up',
        't1 up again (the daemon keeps probing)',
        120_000,
      );
      await eventually(
        () => inCgroup('fo', 'fo-a'),
        `failover app back in fo-a (it is in ${cgroupOf(agents.fo.pid)})`,
        60_000,
      );
      await eventually(
        async () => pathOf((await agents.bl.probe(`udp:${PORT.bl}`)).from) === 't1',
        'block app through t1 again',
        60_000,
      );
      await steady({ ad: 't1', bl: 't1', fo: 't1', dr: 'none' });

      const pk = Object.fromEntries(
        await Promise.all(caps.splice(0).map(async (c) => [c.iface, await c.stop()] as const)),
      );
      const drop = Object.fromEntries(
        Object.entries(pk).map(([i, p]) => [i, flowPackets(p, PORT.dr).length]),
      );
      expect(drop).toEqual({ [t.clientIf]: 0, 'awg-t1': 0, 'awg-t2': 0 });
      // the capture saw the others' flows (the check above can fail)
      expect(flowPackets(pk[t.clientIf]!, PORT.ad).length).toBeGreaterThan(0);
      expect(flowPackets(pk['awg-t2']!, PORT.fo).length).toBeGreaterThan(0);
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n--- daemon output (tail)\n${d?.proc.output().slice(-6000)}`,
        { cause: e },
      );
    } finally {
      for (const c of caps) await c.stop().catch(() => undefined);
    }
  }, 600_000);

  it('awg status (through the daemon) shows t1 and t2 healthy after the recovery', async () => {
    const r = await d!.cli(['status', '--json']);
    expect(r.code, showRun(r)).toBe(0);
    const st = r.json<{ tunnels: { name: string; health?: string }[] }>();
    expect(st.tunnels.map((x) => [x.name, x.health]).sort()).toEqual([
      ['t1', 'up'],
      ['t2', 'up'],
    ]);
  });
});
