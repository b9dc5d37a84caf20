/**
 * Per-app routing with `awg exec` against the real product (dist/), in the topology of
 * perapp-topology.ts (client, router, two awg peers, a server that reports the source it sees):
 * - `awg exec --tunnel t1` reaches the server through t1, `--tunnel t2` through t2 — both at
 *   once — `--direct` and an app started without awg go direct, `--rule` of a `target: block`
 *   rule gets nothing;
 * - zero mis-routed packets: tcpdump on the client's underlay and on both TUNs; every packet of
 *   an app's flow (its own server port) is on its path's interface and on no other (a blocked
 *   app's packets are on none).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeAwgEnv, cleanupAwgEnv, type AwgEnv } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns, nsExec } from '../helpers/netns.js';
import {
  ADDR,
  awgd,
  awgDistArgv,
  clientTunnels,
  createPerAppTopology,
  eventually,
  flowPackets,
  parseProbes,
  pathOf,
  showRun,
  startCapture,
  type Capture,
  type PerAppTopology,
  type Pkt,
  type ProbeResult,
} from './perapp-topology.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'ping']);

describe.skipIf(skip)('per-app routing with awg exec (two tunnels, packet captures)', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology();
    ce = makeAwgEnv();
    const cfg = join(ce.dir, 'client.yaml');
    writeFileSync(
      cfg,
      `version: 1
${clientTunnels(t.keys)}rules:
  - name: blocked
    match: { dir: ${t.apps.appsDir}/blocked }
    target: block
default: direct
`,
    );
    const a = await awgd(t.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
    expect(a.code, showRun(a)).toBe(0);
  }, 180_000);

  afterAll(async () => {
    if (t && ce)
      await awgd(t.client, ce, ['down', '--state-dir', ce.stateDir]).catch(() => undefined);
    await t?.destroy();
    cleanupAwgEnv(ce);
  }, 120_000);

  /** `awg exec <how> -- app app.cjs probes…` in the client namespace */
  const execApp = async (how: string[], app: string, probes: string[]): Promise<ProbeResult[]> => {
    const r = await awgd(t.client, ce, [
      'exec',
      ...how,
      '--state-dir',
      ce.stateDir,
      '--',
      t.apps.app(app),
      t.apps.script,
      ...probes,
    ]);
    expect(r.code, showRun(r)).toBe(0);
    const res = parseProbes(r.stdout);
    expect(
      res.map((x) => x.probe),
      showRun(r),
    ).toEqual(probes);
    return res;
  };
  const plainApp = async (app: string, probes: string[]): Promise<ProbeResult[]> => {
    const r = await nsExec(t.client, t.apps.app(app), [t.apps.script, ...probes], {
      allowFail: true,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    return parseProbes(r.stdout);
  };

  it('exec --tunnel t1/t2 (at once), --direct and an unplaced app each take their path; a block rule gets nothing; zero mis-routed packets', async () => {
    // both handshakes done (warm-up on a port no assertion looks at)
    for (const tun of ['t1', 't2'] as const) {
      await eventually(
        async () => {
          const [r] = await execApp(['--tunnel', tun], 'warm', ['udp:8008']);
          return r!.ok && pathOf(r!.from) === tun;
        },
        `a first packet through ${tun}`,
        60_000,
      );
    }

    const caps: Capture[] = [];
    for (const i of [t.clientIf, 'awg-t1', 'awg-t2'])
      caps.push(await startCapture(t.client, i, ce.dir));
    let pk: Record<string, Pkt[]> = {};
    try {
      const P = { t1: 8001, t2: 8002, direct: 8003, plain: 8004, block: 8005 };
      const probes = (port: number) => [`tcp:${port}`, `udp:${port}`, `tcp:${port}`];
      const [r1, r2] = await Promise.all([
        execApp(['--tunnel', 't1'], 'one', probes(P.t1)),
        execApp(['--tunnel', 't2'], 'two', probes(P.t2)),
      ]);
      const rd = await execApp(['--direct'], 'three', probes(P.direct));
      const rp = await plainApp('four', probes(P.plain));
      const rb = await execApp(['--rule', 'blocked'], 'blocked', probes(P.block));

      const paths = (rs: ProbeResult[]) => rs.map((x) => (x.ok ? pathOf(x.from) : 'none'));
      expect(paths(r1), JSON.stringify(r1)).toEqual(['t1', 't1', 't1']);
      expect(paths(r2), JSON.stringify(r2)).toEqual(['t2', 't2', 't2']);
      expect(paths(rd), JSON.stringify(rd)).toEqual(['direct', 'direct', 'direct']);
      expect(paths(rp), JSON.stringify(rp)).toEqual(['direct', 'direct', 'direct']);
      expect(paths(rb), JSON.stringify(rb)).toEqual(['none', 'none', 'none']);

      pk = Object.fromEntries(
        await Promise.all(caps.map(async (c) => [c.iface, await c.stop()] as const)),
      );
      caps.length = 0;
      const on = (iface: string, port: number) => flowPackets(pk[iface]!, port).length;
      const u = t.clientIf;
      const counts = Object.fromEntries(
        Object.entries(P).map(([k, port]) => [
          k,
          { underlay: on(u, port), t1: on('awg-t1', port), t2: on('awg-t2', port) },
        ]),
      );
      // every flow only where it belongs: at least the 3 requests and their replies there …
      expect(counts.t1!.t1).toBeGreaterThanOrEqual(6);
      expect(counts.t2!.t2).toBeGreaterThanOrEqual(6);
      expect(counts.direct!.underlay).toBeGreaterThanOrEqual(6);
      expect(counts.plain!.underlay).toBeGreaterThanOrEqual(6);
      // … and not a single packet anywhere else; the blocked app's packets nowhere
      expect({
        ...counts,
        t1: { ...counts.t1, t1: 'ok' },
        t2: { ...counts.t2, t2: 'ok' },
        direct: { ...counts.direct, underlay: 'ok' },
        plain: { ...counts.plain, underlay: 'ok' },
      }).toEqual({
        t1: { underlay: 0, t1: 'ok', t2: 0 },
        t2: { underlay: 0, t1: 0, t2: 'ok' },
        direct: { underlay: 'ok', t1: 0, t2: 0 },
        plain: { underlay: 'ok', t1: 0, t2: 0 },
        block: { underlay: 0, t1: 0, t2: 0 },
      });
      // the tunnelled flows crossed the underlay only as WireGuard to their own peer
      const wg = pk[u]!.filter(
        (p) => p.proto === 'udp' && (p.dport === 51820 || p.sport === 51820),
      );
      expect(wg.some((p) => p.dst === ADDR.peer1)).toBe(true);
      expect(wg.some((p) => p.dst === ADDR.peer2)).toBe(true);
      // on the underlay nothing but WireGuard and the direct flows (plus ARP, not parsed)
      const stray = pk[u]!.filter(
        (p) =>
          !wg.includes(p) &&
          !flowPackets([p], P.direct).length &&
          !flowPackets([p], P.plain).length,
      );
      expect(stray, JSON.stringify(stray)).toEqual([]);
    } finally {
      for (const c of caps) await c.stop().catch(() => undefined);
    }
  }, 240_000);

  it("awg processes lists an exec'd app with its cgroup route", async () => {
    // the lister itself runs under awg exec --tunnel t1: it must see itself routed through t1
    const cli = awgDistArgv(t.client, ['processes', '--json', '--state-dir', ce.stateDir]).slice(3);
    const r = await awgd(t.client, ce, [
      'exec',
      '--tunnel',
      't1',
      '--state-dir',
      ce.stateDir,
      '--',
      ...cli,
    ]);
    expect(r.code, showRun(r)).toBe(0);
    const list = JSON.parse(r.stdout) as {
      pid: number;
      cgroup: string;
      route: string;
      target?: string;
    }[];
    const self = list.filter((p) => p.cgroup === `/${ce.cgroupRoot}/_exec-t1`);
    expect(self.length, r.stdout).toBeGreaterThanOrEqual(1);
    expect(self[0], JSON.stringify(self)).toMatchObject({ route: 't1' });
  }, 60_000);
});
