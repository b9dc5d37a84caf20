/**
 * List formats against the real kernel, through the daemon (`awg daemon` from dist/), in the
 * topology of perapp-topology.ts: one destination rule per format, each naming published
 * samples (test/fixtures/lists/), alternately through t1 and t2 —
 *
 *   plain    Re:filter ipsum + domains_all excerpts      t1
 *   dnsmasq  itdoginfo inside-dnsmasq-nfset excerpt      t2
 *   sing-box vernette telegram.json                      t1
 *   srs      sing-geoip ad.srs + vernette x.srs          t2
 *   geosite  v2fly dlc excerpt, category telegram        t1
 *   geoip    v2fly geoip excerpt, category ad            t2
 *
 * For each format: a program's first connection to a listed address goes through the rule's
 * tunnel and not one packet of it is on the underlay (a capture on the client's veth); a name
 * the list covers, resolved through awg's DNS path (the daemon's stub in front of the
 * server's dnsmasq), is learned before the program has the answer and goes the same way; an
 * unlisted name and address go direct. Then a broken file of each format (a refused line,
 * `#` for every domain, a narrowing field or item, a truncated geosite, a geoip entry with
 * reverse_match) is refused by `awg validate` and by `awg apply` through the daemon at its
 * file:line:col, and nothing changes: the client namespace's nft ruleset (learned elements
 * aside) and its ip rules and routes are as before, and the lists still route.
 *
 * Only `domain` and `address` entries are used: the categories and rule-sets chosen hold no
 * `full`, `keyword` or `regex` entries, which the list collector (config/lists.ts) matches
 * only once its support for them lands (the openai/speedtest samples need it).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import { geoipEntry } from '../helpers/list-encoders.js';
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
  startDaemon,
  type Daemon,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'dnsmasq']);

const FIX = join(REPO_ROOT, 'test/fixtures/lists');
const PORT = 8001;
/** not in any list: direct */
const OTHER = '10.200.73.3';
const UNLISTED = { name: 'unlisted.test', answer: '10.200.73.39' };

interface Case {
  format: string;
  target: 't1' | 't2';
  /** sample files, copied to lists/; `:category` appended in the config */
  lists: { sample: string; category?: string }[];
  /** a listed address (added on the server, routed to it by the router) */
  address?: string;
  /** a listed name and the (unlisted) address dnsmasq answers for it */
  name?: { name: string; answer: string };
  /** a broken file of this format: its bytes and where the error is */
  broken: { file: string; bytes: () => Buffer; category?: string; at: string };
}

const sample = (p: string) => readFileSync(join(FIX, p));

const CASES: Case[] = [
  {
    format: 'plain',
    target: 't1',
    lists: [
      { sample: 'plain/refilter-ipsum.head200.lst' },
      { sample: 'plain/refilter-domains_all.head200.lst' },
    ],
    address: '188.166.238.170',
    name: { name: 'www.000webhost.com', answer: '10.200.73.31' },
    broken: { file: 'bad.lst', bytes: () => Buffer.from('example.org\nnot/a/name\n'), at: '2:1' },
  },
  {
    format: 'dnsmasq',
    target: 't2',
    lists: [{ sample: 'dnsmasq/itdoginfo-inside-dnsmasq-nfset.head200.lst' }],
    name: { name: 'www.adguard-vpn.com', answer: '10.200.73.32' },
    broken: {
      file: 'bad.conf',
      bytes: () => Buffer.from('server=/a.example/1.1.1.1\naddress=/#/0.0.0.0\n'),
      at: '2:10',
    },
  },
  {
    format: 'sing-box',
    target: 't1',
    lists: [{ sample: 'sing-box/vernette-telegram.json' }],
    address: '149.154.167.99',
    name: { name: 'web.telegram.org', answer: '10.200.73.33' },
    broken: {
      file: 'bad.json',
      bytes: () => sample('sing-box/vernette-discord-full.json'),
      at: '15:7',
    },
  },
  {
    format: 'srs',
    target: 't2',
    lists: [{ sample: 'srs/sing-geoip-ad.srs' }, { sample: 'srs/vernette-x.srs' }],
    address: '46.172.224.1',
    name: { name: 'api.x.com', answer: '10.200.73.34' },
    broken: { file: 'bad.srs', bytes: () => sample('srs/vernette-discord-full.srs'), at: '1:173' },
  },
  {
    format: 'geosite',
    target: 't1',
    lists: [{ sample: 'geosite/v2fly-dlc-excerpt.dat', category: 'telegram' }],
    name: { name: 'updates.tdesktop.com', answer: '10.200.73.35' },
    broken: {
      file: 'bad-site.dat',
      bytes: () => sample('geosite/v2fly-dlc-excerpt.dat').subarray(0, 3100),
      category: 'telegram',
      at: '1:2996',
    },
  },
  {
    format: 'geoip',
    target: 't2',
    lists: [{ sample: 'geoip/v2fly-geoip-ad-private.dat', category: 'ad' }],
    address: '34.99.136.1',
    broken: {
      file: 'bad-ip.dat',
      bytes: () => geoipEntry('AD', [[[34, 99, 136, 0], 23]], true),
      category: 'ad',
      at: '1:17',
    },
  },
];

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
const ref = (file: string, category?: string) =>
  category ? `lists/${file}:${category}` : `lists/${file}`;

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
if (/^[0-9.]+$/.test(process.argv[1])) go(process.argv[1]);
else r.resolve4(process.argv[1], (e, a) => e ? console.log(JSON.stringify({ err: 'DNS ' + e.code })) : go(a[0]));
`;

/** learned sets' elements come and go with DNS answers; the rest must not move */
function normalise(ruleset: string): string {
  return ruleset.replace(/(set l[46]_\w+ \{[^}]*?)\n\s*elements = \{[^}]*\}/g, '$1');
}

describe.skipIf(skip)('list formats: a rule per format routes its sample', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let d: Daemon | undefined;
  let echo: NsProcess | undefined;
  let dnsmasq: NsProcess | undefined;

  const rules = (broken?: Case) =>
    CASES.map((c) => {
      const lists =
        broken === c
          ? [ref(`broken/${c.broken.file}`, c.broken.category)]
          : c.lists.map((l) => ref(base(l.sample), l.category));
      return `  - name: fmt_${c.format.replace('-', '')}
    to:
      lists: [${lists.map((l) => JSON.stringify(l)).join(', ')}]
    target: ${c.target}
`;
    }).join('');
  const config = (broken?: Case) => `version: 1
${clientTunnels(t.keys)}rules:
${rules(broken)}default: direct
`;

  const fetchPath = async (addr: string): Promise<string> => {
    const r = await run(
      'nsenter',
      [`--net=${netnsPath(t.client)}`, '--', process.execPath, '-e', FETCH_JS, addr, String(PORT)],
      { allowFail: true },
    );
    const o = JSON.parse(r.stdout.trim() || '{}') as { from?: string; err?: string };
    return o.from ? pathOf(o.from) : `error:${o.err ?? r.stderr}`;
  };

  const snapshot = async () => {
    const ns = ['nsenter', `--net=${netnsPath(t.client)}`, '--'];
    const out = async (args: string[]) => (await run(ns[0]!, [...ns.slice(1), ...args])).stdout;
    return {
      nft: normalise(await out(['nft', '-s', 'list', 'ruleset'])),
      rules4: await out(['ip', 'rule', 'show']),
      rules6: await out(['ip', '-6', 'rule', 'show']),
      routes: await out(['ip', 'route', 'show', 'table', 'all']),
    };
  };

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology();
    const dev = (
      JSON.parse(
        (await run('ip', ['-n', t.server, '-j', 'route', 'get', ADDR.routerServer])).stdout,
      ) as { dev: string }[]
    )[0]!.dev;
    const listed = CASES.flatMap((c) => (c.address ? [c.address] : []));
    const answers = [...CASES.flatMap((c) => (c.name ? [c.name.answer] : [])), UNLISTED.answer];
    for (const a of [OTHER, ...answers])
      await run('ip', ['-n', t.server, 'addr', 'add', `${a}/24`, 'dev', dev]);
    // the sample's public addresses: on the server, and routed to it by the router
    for (const a of listed) {
      await run('ip', ['-n', t.server, 'addr', 'add', `${a}/32`, 'dev', dev]);
      await run('ip', ['-n', t.router, 'route', 'add', `${a}/32`, 'via', ADDR.server]);
    }
    echo = nsSpawn(t.server, process.execPath, ['-e', ECHO_JS, OTHER, ...listed, ...answers]);
    dnsmasq = nsSpawn(t.server, 'dnsmasq', [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${ADDR.server}`,
      '--port=53',
      ...CASES.flatMap((c) => (c.name ? [`--host-record=${c.name.name},${c.name.answer}`] : [])),
      `--host-record=${UNLISTED.name},${UNLISTED.answer}`,
      '--local-ttl=30',
      '--pid-file=',
      '--log-facility=-',
    ]);
    await eventually(() => echo!.output().includes('listening'), 'the echo server listens');
    ce = makeAwgEnv();
    mkdirSync(join(ce.dir, 'lists', 'broken'), { recursive: true });
    for (const c of CASES) {
      for (const l of c.lists)
        copyFileSync(join(FIX, l.sample), join(ce.dir, 'lists', base(l.sample)));
      writeFileSync(join(ce.dir, 'lists', 'broken', c.broken.file), c.broken.bytes());
    }
    const cfg = join(ce.dir, 'client.yaml');
    writeFileSync(cfg, config());
    const v = await awgd(t.client, ce, ['validate', '-f', cfg]);
    expect(v.code, showRun(v)).toBe(0);
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
    if (ce) cleanupAwgEnv(ce);
  }, 120_000);

  for (const c of CASES) {
    it(`${c.format}: the first packets to its listed address and name go through ${c.target}, none on the underlay`, async () => {
      const cap = await startCapture(t.client, t.clientIf, ce.dir);
      const paths: Record<string, string> = {};
      try {
        if (c.address) paths.address = await fetchPath(c.address);
        if (c.name) paths.name = await fetchPath(c.name.name);
      } finally {
        const pkts = await cap.stop();
        const to = (a: string) => pkts.filter((p) => p.dst === a && p.dport === PORT);
        if (c.address)
          expect(to(c.address), `${c.format}: ${c.address} on the underlay`).toEqual([]);
        if (c.name)
          expect(to(c.name.answer), `${c.format}: ${c.name.name} on the underlay`).toEqual([]);
      }
      if (c.address) expect(paths.address, `${c.format}: ${c.address}`).toBe(c.target);
      if (c.name) expect(paths.name, `${c.format}: ${c.name.name}`).toBe(c.target);
    });
  }

  it('an unlisted name and address go direct (the capture sees them on the underlay)', async () => {
    const cap = await startCapture(t.client, t.clientIf, ce.dir);
    let a: string, n: string;
    try {
      a = await fetchPath(OTHER);
      n = await fetchPath(UNLISTED.name);
    } finally {
      const pkts = await cap.stop();
      expect(
        pkts.filter((p) => p.dst === UNLISTED.answer && p.dport === PORT).length,
      ).toBeGreaterThan(0);
    }
    expect([a, n]).toEqual(['direct', 'direct']);
  });

  it('a broken file of each format is refused at its place, by validate and by apply, and nothing changes', async () => {
    const before = await snapshot();
    for (const c of CASES) {
      const cfg = join(ce.dir, `broken-${c.format}.yaml`);
      writeFileSync(cfg, config(c));
      const where = `${join(ce.dir, 'lists', 'broken', c.broken.file)}:${c.broken.at}: rules[${CASES.indexOf(c)}].to.lists[0]: `;
      const v = await awgd(t.client, ce, ['validate', '-f', cfg]);
      expect(v.code, showRun(v)).toBe(1);
      expect(v.stderr, showRun(v)).toContain(where);
      const a = await d!.cli(['apply', '-f', cfg]);
      expect(a.code, `${c.format}: ${showRun(a)}`).not.toBe(0);
      expect(a.stderr + a.stdout, showRun(a)).toContain(where);
    }
    const after = await snapshot();
    expect(after.nft).toEqual(before.nft);
    expect(after.rules4).toEqual(before.rules4);
    expect(after.rules6).toEqual(before.rules6);
    expect(after.routes).toEqual(before.routes);
    // the lists still route
    expect(await fetchPath(CASES[0]!.address!)).toBe('t1');
    const st = await d!.cli(['status', '--json']);
    expect(st.json<{ state: string }>().state, showRun(st)).toBe('converged');
  });
});
