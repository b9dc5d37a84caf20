/**
 * Destination rules (`to: {cidrs, lists}`) against the real kernel, in the topology of
 * perapp-topology.ts, through the daemon (`awg daemon` from dist/):
 * - a rule without `match` whose list file names the server's address sends every program's
 *   connections to it through t1; an address the list does not name goes direct;
 * - a program rule with `cidrs` ahead of it sends only that program's connections to those
 *   addresses through t2 (both must hold); the same program to another address goes on to
 *   the next rules (here: direct);
 * - the nft table holds the sets with their elements; the ruleset carries the count and
 *   digest, not the elements; a list edit is followed by the daemon (new elements applied).
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import {
  netnsPath,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  pathOf,
  showRun,
  startCapture,
  startAgent,
  startDaemon,
  type Daemon,
  type PerAppTopology,
} from './perapp-topology.js';
import { cgroupOf } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'dnsmasq']);

/** a second and third address on the server, not in the list at first */
const OTHER = '10.200.73.3';
const THIRD = '10.200.73.4';
/** what dnsmasq answers for the listed name (through a CNAME) and for an unlisted one */
const LISTED = '10.200.73.5';
const UNLISTED = '10.200.73.6';
const PORT = 8001;
/** a real user of its own: a `user:` rule takes its connections, matched in place by uid */
const USER = `awgt${randomBytes(3).toString('hex')}`;

const ECHO_JS = `
const http = require('http');
let n = 0;
for (const a of process.argv.slice(1)) http.createServer((q, s) => s.end(JSON.stringify({ from: q.socket.remoteAddress }))).listen(${PORT}, a, () => { if (++n === process.argv.length - 1) console.log('listening'); });
`;

const FETCH_JS = `
const http = require('http'), dns = require('dns');
const r = new dns.Resolver(); r.setServers([${JSON.stringify(ADDR.server)}]);
const go = (host) => { const q = http.get({ host, port: Number(process.argv[2]), path: '/', timeout: 4000, agent: false }, (r) => {
  let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(b));
});
q.on('timeout', () => { q.destroy(); console.log(JSON.stringify({ err: 'ETIMEDOUT' })); });
q.on('error', (e) => console.log(JSON.stringify({ err: e.code }))); };
// a name: asked of the server's resolver (as resolv.conf would), connected at once to the answer
if (/^[0-9.]+$/.test(process.argv[1])) go(process.argv[1]);
else r.resolve4(process.argv[1], (e, a) => e ? console.log(JSON.stringify({ err: 'DNS ' + e.code })) : go(a[0]));
`;

describe.skipIf(skip)('destination rules: cidrs and list files decide by address', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let d: Daemon | undefined;
  let echo: NsProcess | undefined;
  let dnsmasq: NsProcess | undefined;
  let cfg: string;
  let list: string;

  const config = () => `version: 1
${clientTunnels(t.keys)}rules:
  - name: byuser
    match: { user: ${USER} }
    to: { cidrs: [${UNLISTED}/32] }
    target: t2
  - name: prog
    match: { name: awgtapp-${t.apps.tag}-one }
    to: { cidrs: [${ADDR.server}/32] }
    target: t2
  - name: listed
    to:
      lists: [lists/blocked.txt]
    target: t1
  - name: sites
    to: { domains: [sites.test] }
    target: t1
default: direct
`;

  /** a plain program (not placed by any rule) in the client namespace: the path it took */
  const fetchPath = async (addr: string, asUser?: string): Promise<string> => {
    const as = asUser
      ? ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', '--']
      : [];
    const r = await run(
      'nsenter',
      [
        `--net=${netnsPath(t.client)}`,
        '--',
        ...as,
        process.execPath,
        '-e',
        FETCH_JS,
        addr,
        String(PORT),
      ],
      { allowFail: true },
    );
    const o = JSON.parse(r.stdout.trim() || '{}') as { from?: string; err?: string };
    return o.from ? pathOf(o.from) : `error:${o.err ?? r.stderr}`;
  };

  beforeAll(async () => {
    await sweepStaleNetns();
    await run('useradd', ['-M', '-U', '-r', '-s', '/usr/sbin/nologin', USER]);
    t = await createPerAppTopology();
    const srvIf = (await run('ip', ['-n', t.server, '-j', 'route', 'get', ADDR.routerServer]))
      .stdout;
    const dev = (JSON.parse(srvIf) as { dev: string }[])[0]!.dev;
    for (const a of [OTHER, THIRD])
      await run('ip', ['-n', t.server, 'addr', 'add', `${a}/24`, 'dev', dev]);
    for (const a of [LISTED, UNLISTED])
      await run('ip', ['-n', t.server, 'addr', 'add', `${a}/24`, 'dev', dev]);
    echo = nsSpawn(t.server, process.execPath, ['-e', ECHO_JS, OTHER, THIRD, LISTED, UNLISTED]);
    dnsmasq = nsSpawn(t.server, 'dnsmasq', [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${ADDR.server}`,
      '--port=53',
      `--host-record=edge.cdn.test,${LISTED}`,
      '--cname=www.sites.test,edge.cdn.test',
      `--host-record=other.test,${UNLISTED}`,
      '--local-ttl=30',
      '--pid-file=',
      '--log-facility=-',
    ]);
    await eventually(() => echo!.output().includes('listening'), 'echo server on .3/.4');
    ce = makeAwgEnv();
    cfg = join(ce.dir, 'client.yaml');
    list = join(ce.dir, 'lists', 'blocked.txt');
    await run('mkdir', ['-p', join(ce.dir, 'lists')]);
    writeFileSync(
      list,
      `# sites to reach through t1\n${ADDR.server}\n198.51.100.0/24 # never used\n2001:db8::/32\n`,
    );
    writeFileSync(cfg, config());
    d = await startDaemon(t.client, ce, cfg);
  }, 240_000);

  afterAll(async () => {
    await d?.stop();
    if (t && ce)
      await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
        () => undefined,
      );
    await echo?.kill(500);
    await dnsmasq?.kill(500);
    await t?.destroy();
    cleanupAwgEnv(ce);
    spawnSync('userdel', ['-f', USER]);
    spawnSync('groupdel', [USER]);
  }, 120_000);

  it('a listed address goes through t1 for every program, an unlisted one direct', async () => {
    expect(await fetchPath(ADDR.server)).toBe('t1');
    expect(await fetchPath(OTHER)).toBe('direct');
  });

  it('a user rule (matched in place by uid) with cidrs: that user to that address through t2, root direct', async () => {
    expect(await fetchPath(UNLISTED, USER)).toBe('t2');
    expect(await fetchPath(UNLISTED)).toBe('direct');
    // the user's traffic to other addresses goes on to the next rules
    expect(await fetchPath(OTHER, USER)).toBe('direct');
  });

  it('a program rule with cidrs takes only that program to those addresses', async () => {
    const one = await startAgent(t.client, t.apps.app('one'), t.apps.script);
    await eventually(
      () => cgroupOf(one.pid) === `/${ce.cgroupRoot}/prog`,
      `app one (pid ${one.pid}) placed in prog`,
    ).catch(async (e: Error) => {
      const st = await d!.cli(['status', '--json']);
      throw new Error(
        `${e.message}; it is in ${cgroupOf(one.pid)}\n--- status\n${st.stdout}\n--- daemon output (tail)\n${d!.proc.output().slice(-5000)}`,
      );
    });
    const r = await one.probe(`tcp:${PORT}`);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(pathOf(r.from)).toBe('t2');
    // another program to the same address: the list's rule (t1), shown above
    await one.stop();
  });

  it('the table holds the sets; the ruleset names their count and digest, not the elements', async () => {
    const listing = (
      await run('nsenter', [
        `--net=${netnsPath(t.client)}`,
        '--',
        'nft',
        'list',
        'table',
        'inet',
        'awg',
      ])
    ).stdout;
    expect(listing).toMatch(/set d4_listed \{[^}]*comment "awg n=2 sha256=[0-9a-f]+"/);
    expect(listing).toContain('10.200.73.2');
    expect(listing).toContain('198.51.100.0/24');
    expect(listing).toMatch(/set d6_listed \{[^}]*2001:db8::\/32/);
    expect(listing).toMatch(/ip daddr @d4_listed .*comment "app\/listed\/@d4_listed"/);
  });

  it('a list edit is followed: a newly listed address goes through t1', async () => {
    expect(await fetchPath(THIRD)).toBe('direct');
    writeFileSync(list, `${ADDR.server}\n${THIRD}\n`);
    await eventually(async () => (await fetchPath(THIRD)) === 't1', 'the new list applied', 30_000);
    const st = await d!.cli(['status', '--json']);
    expect(st.code, showRun(st)).toBe(0);
  });

  it('a listed domain: learned before the app has the answer, its first SYN through t1 (0 packets on the underlay); an unlisted name direct; explain agrees', async () => {
    const cap = await startCapture(t.client, t.clientIf, ce.dir);
    let pkts: Awaited<ReturnType<typeof cap.stop>> = [];
    let listed: string, unlisted: string;
    try {
      listed = await fetchPath('www.sites.test');
      unlisted = await fetchPath('other.test');
    } finally {
      pkts = await cap.stop();
    }
    expect(listed).toBe('t1');
    expect(unlisted).toBe('direct');
    const to = (a: string) => pkts.filter((p) => p.dst === a && p.dport === PORT);
    expect(to(LISTED)).toEqual([]);
    expect(to(UNLISTED).length).toBeGreaterThan(0);
    const set = (
      await run('nsenter', [
        `--net=${netnsPath(t.client)}`,
        '--',
        'nft',
        'list',
        'set',
        'inet',
        'awg',
        'l4_sites',
      ])
    ).stdout;
    expect(set).toContain(LISTED);
    expect(set).not.toContain(UNLISTED);
    // explain, through the daemon, for a process of this namespace: the learned address
    const sleeper = nsSpawn(t.client, process.execPath, ['-e', 'setInterval(() => {}, 1e6)']);
    try {
      const e = await d!.cli([
        'explain',
        '--pid',
        String(sleeper.pid),
        '--to',
        `${LISTED}:${PORT}`,
        '--json',
      ]);
      expect(e.code, showRun(e)).toBe(0);
      const doc = e.json<{ decision: { route: string; rule?: string } }>();
      expect(doc.decision.route).toBe('t1');
      expect(doc.decision.rule).toBe('sites');
      const u = await d!.cli([
        'explain',
        '--pid',
        String(sleeper.pid),
        '--to',
        `${UNLISTED}:${PORT}`,
        '--json',
      ]);
      expect(u.code, showRun(u)).toBe(0);
      expect(u.json<{ decision: { route: string } }>().decision.route).toBe('direct');
    } finally {
      await sleeper.kill(500);
    }
  });

  it('status shows each set of a rule: entries and hits, through the daemon and directly', async () => {
    // the list now names two IPv4 addresses and no IPv6 one (no d6 set); the fetches above went
    // to both through @d4_listed
    type Rules = { name: string; sets?: { name: string; elements?: number; packets: number }[] }[];
    const st = await d!.cli(['status', '--json']);
    const rules = (JSON.parse(st.stdout) as { rules?: Rules }).rules ?? [];
    const listed = rules.find((r) => r.name === 'listed');
    expect(
      listed?.sets?.map((x) => [x.name, x.elements]),
      st.stdout,
    ).toEqual([['d4_listed', 2]]);
    expect(listed!.sets![0]!.packets).toBeGreaterThan(0);
    const prog = rules.find((r) => r.name === 'prog');
    expect(prog?.sets?.[0]).toMatchObject({ name: 'd4_prog', elements: 1 });
    expect(prog!.sets![0]!.packets).toBeGreaterThan(0);
    const text = await d!.cli(['status']);
    expect(text.stdout).toMatch(/^ {2}set d4_listed \(static\): 2 entries, hits [1-9]\d* packets/m);
    const direct = await awgd(t.client, ce, [
      'status',
      '--direct',
      '--json',
      '--state-dir',
      ce.stateDir,
    ]);
    const drules = (JSON.parse(direct.stdout) as { traffic: { rules: Rules } }).traffic.rules;
    expect(
      drules.find((r) => r.name === 'listed')?.sets?.map((x) => [x.name, x.elements]),
      direct.stdout,
    ).toEqual([['d4_listed', 2]]);
  });

  it('awg diff of another list against the live table: the set per rule with +N −M, no element lines', async () => {
    const other = join(ce.dir, 'lists', 'other.txt');
    writeFileSync(other, `${ADDR.server}\n192.0.2.0/24\n203.0.113.7\n`);
    const cfg2 = join(ce.dir, 'other.yaml');
    writeFileSync(cfg2, config().replace('lists/blocked.txt', 'lists/other.txt'));
    const r = await awgd(t.client, ce, [
      'diff',
      '-f',
      cfg2,
      '--direct',
      '--state-dir',
      ce.stateDir,
    ]);
    // live: the server and THIRD; wanted: the server and two others
    expect(r.stdout).toContain('~ set d4_listed (rule listed): 2 → 3 entries (+2 −1)\n');
    expect(r.stdout).not.toContain('awg n=');
    expect(r.stdout).not.toContain('192.0.2.0/24');
    const j = await awgd(t.client, ce, [
      'diff',
      '-f',
      cfg2,
      '--direct',
      '--json',
      '--state-dir',
      ce.stateDir,
    ]);
    const doc = JSON.parse(j.stdout) as { changes: { kind: string; sets?: unknown[] }[] };
    expect(doc.changes.find((c) => c.kind === 'firewall')?.sets).toEqual([
      { name: 'd4_listed', rule: 'listed', kind: 'static', action: 'update', before: 2, after: 3 },
    ]);
  });
});
