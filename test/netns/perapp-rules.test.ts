/**
 * Rule-based per-app routing through the daemon's process watcher, against the real product
 * (`awg daemon` from dist/, the proc connector inherited as fd 3 from this process in the
 * initial network namespace), in the topology of perapp-topology.ts:
 * - apps are matched by their executable (`dir`, `name`, `path` glob) and placed by the
 *   daemon; `awg processes` (through the daemon) lists them with rule, target and route;
 * - a `t1` app reaches the server through t1 and a `t2` app through t2 at the same time, an
 *   app no rule matches goes direct, a `target: block` app gets nothing; tcpdump on the
 *   underlay and both TUNs: zero packets of any app's flow on a wrong path (the apps only
 *   send once the test has seen them placed; the watcher's exec→placement window is
 *   measured by the benchmark, not here);
 * - `awg exec --tunnel t2` / `--direct` of an app a rule sends to t1: the explicit choice wins
 *   (the watcher leaves exec cgroups alone), zero packets of it on a wrong path;
 * - full-tunnel mode (`default: t1`, applied by editing the followed config): unmatched apps
 *   go through t1, a `target: direct` rule's app and `awg exec --direct` go direct;
 * - a config edit (a new first rule for a running app) re-places it: same pid, new cgroup,
 *   new path (the daemon follows its file).
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
  type PerAppTopology,
  type Pkt,
} from './perapp-topology.js';
import { cgroupOf } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'ping']);

interface Listed {
  pid: number;
  path: string;
  rule?: string;
  target?: string;
  route: string;
}

describe.skipIf(skip)('per-app routing by rules: the daemon places processes by executable', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let d: Daemon | undefined;
  let cfg: string;
  /** `first`: a rule ahead of by-dir that takes app one to t2 */
  const config = (first = false) => `version: 1
${clientTunnels(t.keys)}rules:
${first ? `  - name: first\n    match: { name: awgtapp-${t.apps.tag}-one }\n    target: t2\n` : ''}  - name: by-dir
    match: { dir: ${t.apps.appsDir}/one }
    target: t1
  - name: by-name
    match: { name: awgtapp-${t.apps.tag}-two }
    target: t2
  - name: by-path
    match: { path: "${t.apps.appsDir}/blocked/*" }
    target: block
default: direct
`;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology();
    ce = makeAwgEnv();
    cfg = join(ce.dir, 'client.yaml');
    writeFileSync(cfg, config());
    d = await startDaemon(t.client, ce, cfg);
  }, 240_000);

  afterAll(async () => {
    await d?.stop();
    if (t && ce)
      await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
        () => undefined,
      );
    await t?.destroy();
    cleanupAwgEnv(ce);
  }, 120_000);

  const processes = async (): Promise<Listed[]> => {
    const r = await d!.cli(['processes', '--json']);
    expect(r.code, showRun(r)).toBe(0);
    return r.json<Listed[]>();
  };
  /** start app `name` and wait until the daemon has placed it in `rule`'s cgroup (or, for none, listed nowhere) */
  const startPlaced = async (name: string, rule: string | undefined): Promise<Agent> => {
    const a = await startAgent(t.client, t.apps.app(name), t.apps.script);
    if (rule)
      await eventually(
        () => cgroupOf(a.pid) === `/${ce.cgroupRoot}/${rule}`,
        `app ${name} (pid ${a.pid}) in cgroup ${rule}`,
      ).catch(async (e: Error) => {
        const st = await d!.cli(['status', '--json']);
        throw new Error(
          `${e.message}; it is in ${cgroupOf(a.pid)}\n--- status\n${st.stdout}\n--- daemon output (tail)\n${d!.proc.output().slice(-5000)}`,
        );
      });
    return a;
  };

  it('matched apps take their tunnels (two at once), an unmatched app goes direct, a block app gets nothing; zero mis-routed packets', async () => {
    const one = await startPlaced('one', 'by-dir');
    const two = await startPlaced('two', 'by-name');
    const blocked = await startPlaced('blocked', 'by-path');
    const other = await startPlaced('other', undefined);

    const list = await processes();
    const byPid = (pid: number) => list.find((p) => p.pid === pid);
    expect(byPid(one.pid), JSON.stringify(list)).toMatchObject({
      path: t.apps.app('one'),
      rule: 'by-dir',
      target: 't1',
      route: 't1',
    });
    expect(byPid(two.pid), JSON.stringify(list)).toMatchObject({
      path: t.apps.app('two'),
      rule: 'by-name',
      target: 't2',
      route: 't2',
    });
    expect(byPid(blocked.pid), JSON.stringify(list)).toMatchObject({
      rule: 'by-path',
      target: 'block',
      route: 'blocked',
    });
    // an unmatched process is not placed (its cgroup is not ours)
    expect(cgroupOf(other.pid)).not.toContain(ce.cgroupRoot);
    expect(byPid(other.pid)?.rule).toBeUndefined();

    // handshakes first, through the placed apps themselves (a port nobody asserts on)
    for (const [a, tun] of [
      [one, 't1'],
      [two, 't2'],
    ] as const)
      await eventually(
        async () => pathOf((await a.probe('udp:8008')).from) === tun,
        `a first packet through ${tun}`,
        60_000,
      );

    const caps: Capture[] = [];
    for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
      caps.push(await startCapture(t.client, i, ce.dir));
    try {
      const P = { one: 8001, two: 8002, other: 8003, blocked: 8004 };
      // at once: the blocked app's probes each wait out their timeout
      const run3 = (a: Agent, port: number) =>
        Promise.all([a.probe(`tcp:${port}`), a.probe(`udp:${port}`), a.probe(`tcp:${port}`)]);
      const [r1, r2, ro, rb] = await Promise.all([
        run3(one, P.one),
        run3(two, P.two),
        run3(other, P.other),
        run3(blocked, P.blocked),
      ]);
      const paths = (rs: { ok: boolean; from?: string }[]) =>
        rs.map((x) => (x.ok ? pathOf(x.from) : 'none'));
      expect(paths(r1), JSON.stringify(r1)).toEqual(['t1', 't1', 't1']);
      expect(paths(r2), JSON.stringify(r2)).toEqual(['t2', 't2', 't2']);
      expect(paths(ro), JSON.stringify(ro)).toEqual(['direct', 'direct', 'direct']);
      expect(paths(rb), JSON.stringify(rb)).toEqual(['none', 'none', 'none']);

      const pk: Record<string, Pkt[]> = Object.fromEntries(
        await Promise.all(caps.splice(0).map(async (c) => [c.iface, await c.stop()] as const)),
      );
      const on = (iface: string, port: number) => flowPackets(pk[iface]!, port).length;
      const counts = Object.fromEntries(
        Object.entries(P).map(([k, port]) => [
          k,
          { underlay: on(t.clientIf, port), t1: on('awg-t1', port), t2: on('awg-t2', port) },
        ]),
      );
      expect(counts.one!.t1, JSON.stringify(counts)).toBeGreaterThanOrEqual(6);
      expect(counts.two!.t2, JSON.stringify(counts)).toBeGreaterThanOrEqual(6);
      expect(counts.other!.underlay, JSON.stringify(counts)).toBeGreaterThanOrEqual(6);
      expect({
        ...counts,
        one: { ...counts.one, t1: 'ok' },
        two: { ...counts.two, t2: 'ok' },
        other: { ...counts.other, underlay: 'ok' },
      }).toEqual({
        one: { underlay: 0, t1: 'ok', t2: 0 },
        two: { underlay: 0, t1: 0, t2: 'ok' },
        other: { underlay: 'ok', t1: 0, t2: 0 },
        blocked: { underlay: 0, t1: 0, t2: 0 },
      });
    } finally {
      for (const c of caps) await c.stop().catch(() => undefined);
      for (const a of [one, two, blocked, other]) await a.stop();
    }
  }, 300_000);

  it('awg exec wins over a matching rule while the daemon watches: --tunnel t2 and --direct of a t1 app, zero mis-routed packets', async () => {
    const exe = t.apps.app('one'); // matched by rule by-dir → t1
    const caps: Capture[] = [];
    for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
      caps.push(await startCapture(t.client, i, ce.dir));
    try {
      const ex = async (how: string[], port: number) => {
        const r = await awgd(t.client, ce, [
          'exec',
          ...how,
          '--state-dir',
          ce.stateDir,
          '--',
          exe,
          t.apps.script,
          `tcp:${port}`,
          `udp:${port}`,
        ]);
        expect(r.code, showRun(r)).toBe(0);
        return parseProbes(r.stdout).map((x) => (x.ok ? pathOf(x.from) : 'none'));
      };
      expect(await ex(['--tunnel', 't2'], 8006)).toEqual(['t2', 't2']);
      expect(await ex(['--direct'], 8007)).toEqual(['direct', 'direct']);
      const pk: Record<string, Pkt[]> = Object.fromEntries(
        await Promise.all(caps.splice(0).map(async (c) => [c.iface, await c.stop()] as const)),
      );
      const on = (iface: string, port: number) => flowPackets(pk[iface]!, port).length;
      const counts = {
        t2: [on(t.clientIf, 8006), on('awg-t1', 8006), on('awg-t2', 8006)],
        direct: [on(t.clientIf, 8007), on('awg-t1', 8007), on('awg-t2', 8007)],
      };
      const all = Object.fromEntries(
        Object.entries(pk).map(([i, p]) => [
          i,
          p.map((x) => `${x.proto} ${x.src}:${x.sport ?? ''}>${x.dst}:${x.dport ?? ''}`),
        ]),
      );
      expect(counts.t2[2], JSON.stringify({ counts, all })).toBeGreaterThanOrEqual(4);
      expect(counts.direct[0], JSON.stringify({ counts, all })).toBeGreaterThanOrEqual(4);
      expect({ t2: counts.t2.slice(0, 2), direct: counts.direct.slice(1) }).toEqual({
        t2: [0, 0],
        direct: [0, 0],
      });
    } finally {
      for (const c of caps) await c.stop().catch(() => undefined);
    }
  }, 180_000);

  it('a config edit re-places a running app without restarting it', async () => {
    const one = await startPlaced('one', 'by-dir');
    try {
      await eventually(
        async () => pathOf((await one.probe('udp:8005')).from) === 't1',
        'app one through t1',
        60_000,
      );
      writeFileSync(cfg, config(true));
      // the same process is moved to the new first match and goes through t2
      await eventually(
        () => cgroupOf(one.pid) === `/${ce.cgroupRoot}/first`,
        'app one moved to rule first',
        90_000,
      );
      expect(pathOf((await one.probe('udp:8005')).from)).toBe('t2');
      const listed = (await processes()).find((p) => p.pid === one.pid);
      expect(listed, JSON.stringify(listed)).toMatchObject({
        rule: 'first',
        target: 't2',
        route: 't2',
      });
    } finally {
      writeFileSync(cfg, config());
      await one.stop();
    }
  }, 240_000);

  it('full-tunnel mode (default: t1) with a direct rule: unmatched apps go through t1, the excluded app and awg exec --direct go direct; zero mis-routed packets', async () => {
    const other = await startPlaced('other', undefined);
    const excl = await startPlaced('excl', undefined);
    try {
      writeFileSync(
        cfg,
        `version: 1
${clientTunnels(t.keys)}rules:
  - name: excl
    match: { dir: ${t.apps.appsDir}/excl }
    target: direct
default: t1
`,
      );
      await eventually(
        () => cgroupOf(excl.pid) === `/${ce.cgroupRoot}/excl`,
        'the running excluded app placed in excl',
        90_000,
      );
      await eventually(
        async () => pathOf((await other.probe('udp:8008')).from) === 't1',
        'an unmatched app through t1 (full tunnel)',
        90_000,
      );
      const caps: Capture[] = [];
      try {
        for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
          caps.push(await startCapture(t.client, i, ce.dir));
        const ro = [await other.probe('tcp:8001'), await other.probe('udp:8001')];
        const rx = [await excl.probe('tcp:8002'), await excl.probe('udp:8002')];
        const ex = await awgd(t.client, ce, [
          'exec',
          '--direct',
          '--state-dir',
          ce.stateDir,
          '--',
          t.apps.app('other'),
          t.apps.script,
          'tcp:8003',
          'udp:8003',
        ]);
        expect(ex.code, showRun(ex)).toBe(0);
        const rd = parseProbes(ex.stdout);
        const paths = (rs: { ok: boolean; from?: string }[]) =>
          rs.map((x) => (x.ok ? pathOf(x.from) : 'none'));
        expect({ other: paths(ro), excl: paths(rx), execDirect: paths(rd) }).toEqual({
          other: ['t1', 't1'],
          excl: ['direct', 'direct'],
          execDirect: ['direct', 'direct'],
        });
        const pk: Record<string, Pkt[]> = Object.fromEntries(
          await Promise.all(caps.splice(0).map(async (c) => [c.iface, await c.stop()] as const)),
        );
        const on = (port: number) => [
          flowPackets(pk[t.clientIf]!, port).length,
          flowPackets(pk['awg-t1']!, port).length,
          flowPackets(pk['awg-t2']!, port).length,
        ];
        const c = { other: on(8001), excl: on(8002), execDirect: on(8003) };
        expect(c.other[1], JSON.stringify(c)).toBeGreaterThanOrEqual(4);
        expect(c.excl[0], JSON.stringify(c)).toBeGreaterThanOrEqual(4);
        expect(c.execDirect[0], JSON.stringify(c)).toBeGreaterThanOrEqual(4);
        expect({
          other: [c.other[0], c.other[2]],
          excl: c.excl.slice(1),
          execDirect: c.execDirect.slice(1),
        }).toEqual({ other: [0, 0], excl: [0, 0], execDirect: [0, 0] });
      } finally {
        for (const c of caps) await c.stop().catch(() => undefined);
      }
    } finally {
      writeFileSync(cfg, config());
      await other.stop();
      await excl.stop();
    }
  }, 300_000);
});
