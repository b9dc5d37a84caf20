/**
 * `awg explain` against the path traffic actually takes: the real product (`awg daemon` from
 * dist/ with the proc connector) in the topology of perapp-topology.ts. Three apps: `one` placed
 * by a rule to t1 (failover to its next rule), `two` by a rule to t2, `other` by no rule
 * (default direct). For each, the route `awg explain --pid P --to server:port --json` gives
 * (through the daemon, and directly) is the path the server sees its connection come from;
 * after peer1 stops, explain follows the failover the traffic follows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import type { ExplainDocument } from '../../src/model/explain-document.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  pathOf,
  startAgent,
  startDaemon,
  type Agent,
  type Daemon,
  type Path,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

type AppName = 'one' | 'two' | 'other';
const APPS: AppName[] = ['one', 'two', 'other'];
const PORT: Record<AppName, number> = { one: 8001, two: 8002, other: 8003 };

describe.skipIf(skip)('awg explain agrees with the path traffic takes', () => {
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
  - name: r-one
    match: { dir: ${dir('one')} }
    target: t1
    fallback: failover
  - name: r-two
    match: { dir: ${dir('two')} }
    target: t2
  - name: r-one-next
    match: { dir: ${dir('one')} }
    target: t2
default: direct
`,
    );
    d = await startDaemon(t.client, ce, cfg);
    for (const n of APPS) agents[n] = await startAgent(t.client, t.apps.app(n), t.apps.script);
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

  const explainOf = async (n: AppName, direct = false): Promise<ExplainDocument> => {
    const r = await d!.cli([
      'explain',
      '--pid',
      String(agents[n].pid),
      '--to',
      `${ADDR.server}:${PORT[n]}`,
      '--json',
      '--state-dir',
      ce.stateDir,
      ...(direct ? ['--direct'] : []),
    ]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    return r.json<ExplainDocument>();
  };
  const asPath = (route: string): Path => (route === 'blocked' ? 'none' : (route as Path));
  const pathNow = async (n: AppName): Promise<Path> => {
    const p = await agents[n].probe(`tcp:${PORT[n]}`);
    return p.ok ? pathOf(p.from) : 'none';
  };

  it('each app: the route explain gives is the path its connection takes; peer1 stopped: both follow the failover', async () => {
    // placed and converged: each app's explanation names its rule (other: the default)
    await eventually(
      async () =>
        (await explainOf('one')).decision.rule === 'r-one' &&
        (await explainOf('two')).decision.rule === 'r-two',
      'apps placed in their rules',
      60_000,
    );
    await eventually(
      async () => (await pathNow('one')) === 't1',
      'a first packet through t1',
      60_000,
    );
    await eventually(
      async () => (await pathNow('two')) === 't2',
      'a first packet through t2',
      60_000,
    );
    for (const n of APPS) {
      const e = await explainOf(n);
      expect(e.source).toBe('daemon');
      expect({ app: n, route: asPath(e.decision.route) }).toEqual({
        app: n,
        route: await pathNow(n),
      });
      const direct = await explainOf(n, true);
      expect(direct.source).toBe('direct');
      expect(direct.decision).toEqual(e.decision);
    }
    const other = await explainOf('other');
    expect(other.decision).toEqual({ route: 'direct', why: 'no rule fits; default direct' });
    expect(other.steps.map((s) => s.program.fits)).toEqual([false, false, false]);

    // peer1 stopped: the daemon counts t1 down, `one` fails over to r-one-next (t2)
    await t.stopPeer(1);
    await eventually(
      async () => {
        await agents.one.probe(`udp:${PORT.one}`);
        const e = await explainOf('one');
        return e.decision.rule === 'r-one-next';
      },
      'explain: one fails over to r-one-next',
      120_000,
    );
    await eventually(async () => (await pathNow('one')) === 't2', 'one through t2', 60_000);
    const e = await explainOf('one');
    expect(e.decision.route).toBe('t2');
    expect(e.steps.find((s) => s.rule === 'r-one')?.program.fits).toBe(false);
    await t.startPeer(1);
  }, 400_000);
});
