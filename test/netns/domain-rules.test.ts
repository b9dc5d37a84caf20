/**
 * Domain rules without a first-packet race (issue 43): the DNS learning stub on a real kernel
 * with a real resolver (dnsmasq).
 *
 * Topology: client namespace C and server namespace S joined by two veths — the underlay
 * (10.200.81.0/24, fd00:200::81:0/112; C's default route) and a stand-in tunnel
 * (10.200.82.0/24; reached by the mark 0x01000000 through table 100, masqueraded like awg's
 * TUNs). S runs dnsmasq on its underlay address and a TCP listener on service addresses
 * 10.200.83.x / fd00:200::83:x (local to S, reachable by both paths). C's table `inet awg` is
 * hand-written in the shape of the lead's contract — learned sets `l4_r`/`l6_r`, a rule that
 * sends their addresses into the tunnel, `meta skuid 4242` as a tunnelled app — plus the stub's
 * own lines from render-dns-stub.ts. The stub runs in C (test/netns/dns-stub-driver.ts); the
 * apps (test/netns/dns-stub-app.mjs) ask dnsmasq's underlay address, as resolv.conf would.
 *
 * Proof of "learned before the app has the answer": the app connects to the first answer
 * address the moment it has it, and a capture on C's underlay sees 0 packets to it (every one
 * went through the tunnel); an unlisted name's connection is on the underlay (the capture
 * works).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NftPolicy } from '../../src/resources/firewall/policy.js';
import { stubNatRules, stubRouteRules } from '../../src/resources/firewall/render-dns-stub.js';
import { REPO_ROOT } from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft', 'tcpdump', 'dnsmasq', 'setpriv']);

const RESOLVER = '10.200.81.1';
const RESOLVER6 = 'fd00:200::81:1';
const SVC = '10.200.83.10';
const SVC6 = 'fd00:200::83:10';
const MULTI = ['10.200.83.11', '10.200.83.14'];
const PLAIN = '10.200.83.12';
const SHORT = '10.200.83.13';
const PORT = 7001;
const STUB_PORT = 15296;
const MASK = 0x0f000000;
const BYPASS = 0x0f000000;
const TUN_MARK = '0x01000000';
const TUNNELLED_UID = 4242;
/** a tunnelled app in a rule with per-app DNS (its queries go to the tunnel's resolver) */
const PER_APP_UID = 4343;
const STUB_TUNNEL_PORT = 15297;
const TUNNEL_RESOLVER = '10.200.82.1';
const TSX = `file://${join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(fn: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

describe.skipIf(skip)('domain rules: the DNS learning stub (real kernel, dnsmasq)', () => {
  let C = '';
  let S = '';
  let ul = '';
  let tun = '';
  let tmp = '';
  let app = '';
  let stub: NsProcess | undefined;
  let dnsmasq: NsProcess | undefined;

  const table = () => {
    const p = {
      fwmarkMask: MASK,
      bypassMark: BYPASS,
      dnsStub: { port: STUB_PORT, tunnelPort: STUB_TUNNEL_PORT },
      apps: [],
      tunnels: [],
    };
    const setMark = `meta mark set meta mark & 0xf0ffffff | ${TUN_MARK} ct mark set meta mark`;
    const route = [
      'oifname "lo" counter return comment "loopback"',
      `meta mark & 0x0f000000 == 0x0f000000 counter return comment "bypass"`,
      ...stubRouteRules(p as unknown as NftPolicy),
      `meta skuid { ${TUNNELLED_UID}, ${PER_APP_UID} } ${setMark} counter accept comment "app/tunnelled"`,
      `ip daddr @l4_r ${setMark} counter accept comment "app/r"`,
      `ip6 daddr @l6_r ${setMark} counter accept comment "app/r"`,
      `ct mark & 0x0f000000 != 0x00000000 meta mark set ct mark counter accept comment "connection"`,
    ];
    return [
      'table inet awg {',
      '  set l4_r { type ipv4_addr; flags timeout; }',
      '  set l6_r { type ipv6_addr; flags timeout; }',
      '  chain route_out {',
      '    type route hook output priority mangle; policy accept;',
      ...route.map((r) => `    ${r}`),
      '  }',
      '  chain nat_out {',
      '    type nat hook output priority -100; policy accept;',
      // what stubNatRules renders for a cgroup rule with per-app DNS, by uid here
      `    meta skuid ${PER_APP_UID} meta l4proto { tcp, udp } th dport 53 counter redirect to :${STUB_TUNNEL_PORT}`,
      ...stubNatRules(p as unknown as NftPolicy).map((r) => `    ${r}`),
      '  }',
      '  chain nat_post {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    oifname "${tun}" meta mark & 0x0f000000 == ${TUN_MARK} counter masquerade`,
      '  }',
      '}',
      '',
    ].join('\n');
  };

  /** the addresses now in learned set `set` */
  async function setAddrs(set: string): Promise<string[]> {
    const r = await nsExec(C, 'nft', ['-j', 'list', 'set', 'inet', 'awg', set]);
    const doc = JSON.parse(r.stdout) as {
      nftables: { set?: { elem?: (string | { elem: { val: string } })[] } }[];
    };
    const elems = doc.nftables.find((x) => x.set)?.set?.elem ?? [];
    return elems.map((e) => (typeof e === 'string' ? e : e.elem.val));
  }

  /** SIGUSR1: resync; SIGUSR2: print stats */
  async function stubCommand(cmd: 'SIGUSR1' | 'SIGUSR2', reply: RegExp): Promise<string> {
    const before = stub!.output().length;
    process.kill(stub!.pid, cmd);
    let line = '';
    await until(() => {
      const m = reply.exec(stub!.output().slice(before));
      if (m) line = m[0];
      return m !== null;
    }, `stub reply to ${cmd}: ${stub!.output()}`);
    return line;
  }

  interface AppResult {
    addrs: string[];
    ms: number;
    rcode: number;
    out: string;
  }

  /** runs the app in C (as `uid` when given); resolves when it exits */
  async function runApp(
    name: string,
    o: {
      type?: 'A' | 'AAAA';
      transport?: 'udp' | 'tcp';
      resolver?: string;
      connect?: boolean;
      hold?: number;
      uid?: number;
      count?: number;
    } = {},
  ): Promise<AppResult> {
    const args = [
      ...(o.uid !== undefined
        ? ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', process.execPath]
        : [process.execPath]),
      app,
      o.resolver ?? RESOLVER,
      name,
      o.type ?? 'A',
      o.transport ?? 'udp',
    ];
    const r = await nsExec(C, args[0]!, args.slice(1), {
      env: {
        ...process.env,
        CONNECT: o.connect ? String(PORT) : '0',
        HOLD: String(o.hold ?? 0),
        COUNT: String(o.count ?? 1),
      },
      allowFail: true,
      timeoutMs: 20_000,
    });
    const first = r.stdout.split('\n')[0] ?? '';
    if (!first.startsWith('{')) throw new Error(`app failed: ${r.stdout} ${r.stderr}`);
    const res = JSON.parse(first) as Omit<AppResult, 'out'>;
    return { ...res, out: r.stdout };
  }

  /** a capture on C's `dev` while `fn` runs: the packets' one-line summaries */
  async function capture(dev: string, filter: string, fn: () => Promise<void>): Promise<string[]> {
    const file = join(tmp, `cap-${randomBytes(3).toString('hex')}.pcap`);
    const p = nsSpawn(C, 'tcpdump', [
      '-i',
      dev,
      '-n',
      '-U',
      '--immediate-mode',
      '-w',
      file,
      filter,
    ]);
    await until(() => p.output().includes('listening on'), `tcpdump on ${dev}: ${p.output()}`);
    try {
      await fn();
      await sleep(200);
    } finally {
      await p.kill();
    }
    const r = await run('tcpdump', ['-r', file, '-n'], { allowFail: true });
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  beforeAll(async () => {
    await sweepStaleNetns();
    C = await createNetns('dstub-c');
    S = await createNetns('dstub-s');
    tmp = mkdtempSync(join(tmpdir(), 'awgt-dstub-'));
    chmodSync(tmp, 0o755);
    // the app runs as another uid too: a copy it can read
    app = join(tmp, 'app.mjs');
    copyFileSync(join(REPO_ROOT, 'test/netns/dns-stub-app.mjs'), app);
    chmodSync(app, 0o644);

    const u = await vethPair(C, S, {
      addrA: ['10.200.81.2/24', 'fd00:200::81:2/112'],
      addrB: [`${RESOLVER}/24`, `${RESOLVER6}/112`],
    });
    const t = await vethPair(C, S, {
      addrA: ['10.200.82.2/24', 'fd00:200::82:2/112'],
      addrB: ['10.200.82.1/24', 'fd00:200::82:1/112'],
    });
    ul = u.ifA;
    tun = t.ifA;
    for (const a of [SVC, ...MULTI, PLAIN, SHORT])
      await run('ip', ['-n', S, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    await run('ip', ['-n', S, '-6', 'addr', 'add', `${SVC6}/128`, 'dev', 'lo']);
    await run('ip', ['-n', C, 'route', 'add', 'default', 'via', RESOLVER, 'dev', ul]);
    await run('ip', ['-n', C, '-6', 'route', 'add', 'default', 'via', RESOLVER6, 'dev', ul]);
    await run('ip', [
      '-n',
      C,
      'route',
      'add',
      'default',
      'via',
      '10.200.82.1',
      'dev',
      tun,
      'table',
      '100',
    ]);
    await run('ip', [
      '-n',
      C,
      '-6',
      'route',
      'add',
      'default',
      'via',
      'fd00:200::82:1',
      'dev',
      tun,
      'table',
      '100',
    ]);
    for (const f of ['-4', '-6'])
      await run('ip', [
        '-n',
        C,
        f,
        'rule',
        'add',
        'fwmark',
        `${TUN_MARK}/0x0f000000`,
        'lookup',
        '100',
        'pref',
        '100',
      ]);
    await nsExec(C, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0']);

    await nsExec(C, 'nft', ['-f', '-'], { input: table() });

    nsSpawn(S, process.execPath, [
      '-e',
      `require('net').createServer((c) => c.on('data', (d) => c.write(d)).on('error', () => {})).listen(${PORT}, '::')`,
    ]);
    dnsmasq = nsSpawn(S, 'dnsmasq', [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${RESOLVER}`,
      `--listen-address=${RESOLVER6}`,
      `--listen-address=${TUNNEL_RESOLVER}`,
      '--pid-file=',
      '--local-ttl=60',
      `--host-record=svc.listed.test,${SVC},${SVC6}`,
      `--host-record=multi.listed.test,${MULTI[0]}`,
      `--host-record=multi.listed.test,${MULTI[1]}`,
      `--host-record=plain.test,${PLAIN}`,
      `--host-record=short.listed.test,${SHORT},2`,
      '--cname=alias.other.test,svc.listed.test',
      '--log-queries',
    ]);
    stub = nsSpawn(C, process.execPath, [
      '--import',
      TSX,
      join(REPO_ROOT, 'test/netns/dns-stub-driver.ts'),
      JSON.stringify({
        port: STUB_PORT,
        tunnelPort: STUB_TUNNEL_PORT,
        tunnelResolvers: [{ mark: Number(TUN_MARK), v4: TUNNEL_RESOLVER }],
        table: 'awg',
        fwmarkMask: MASK,
        bypassMark: BYPASS,
        minTtl: 1,
        tickMs: 250,
        rules: [{ rule: 'r', names: ['listed.test'], v4: 'l4_r', v6: 'l6_r' }],
      }),
    ]);
    await until(() => stub!.output().includes('ready'), `stub ready: ${stub!.output()}`, 30_000);
    // dnsmasq answers (direct query with the bypass path: through the stub)
    await until(
      async () => (await runApp('plain.test').catch(() => undefined))?.addrs[0] === PLAIN,
      `dnsmasq answers: ${dnsmasq.output()}`,
      15_000,
    );
  }, 90_000);

  afterAll(async () => {
    await stub?.kill();
    await dnsmasq?.kill();
    if (C) await destroyNetns(C);
    if (S) await destroyNetns(S);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('a listed name: the element is in the set before the app has the answer — its first SYN goes through the tunnel', async () => {
    let r: AppResult | undefined;
    const under = await capture(ul, `dst host ${SVC}`, async () => {
      const onTun = await capture(tun, `dst host ${SVC}`, async () => {
        r = await runApp('svc.listed.test', { connect: true });
      });
      expect(onTun.length).toBeGreaterThan(0);
      expect(onTun[0]).toMatch(/Flags \[S\]/);
    });
    expect(r!.addrs).toEqual([SVC]);
    expect(r!.out).toContain('connected');
    expect(under).toEqual([]);
    expect(await setAddrs('l4_r')).toContain(SVC);
  });

  it('an unlisted name learns nothing and its connection takes the underlay', async () => {
    let r: AppResult | undefined;
    const under = await capture(ul, `dst host ${PLAIN} and tcp`, async () => {
      r = await runApp('plain.test', { connect: true });
    });
    expect(r!.addrs).toEqual([PLAIN]);
    expect(under.length).toBeGreaterThan(0);
    expect(await setAddrs('l4_r')).not.toContain(PLAIN);
  });

  it('CNAME: an unlisted alias of a listed name learns the address', async () => {
    await nsExec(C, 'nft', ['flush', 'set', 'inet', 'awg', 'l4_r']);
    const under = await capture(ul, `dst host ${SVC}`, async () => {
      const r = await runApp('alias.other.test', { connect: true });
      expect(r.addrs).toEqual([SVC]);
      expect(r.out).toContain('connected');
    });
    expect(under).toEqual([]);
    expect(await setAddrs('l4_r')).toContain(SVC);
  });

  it('AAAA over IPv6 into l6_r, first SYN through the tunnel', async () => {
    const under = await capture(ul, `dst host ${SVC6}`, async () => {
      const r = await runApp('svc.listed.test', {
        type: 'AAAA',
        resolver: RESOLVER6,
        connect: true,
      });
      expect(r.addrs.map((a) => a.replace(/(^|:)0+(?=[0-9a-f])/g, '$1'))).toHaveLength(1);
      expect(r.out).toContain('connected');
    });
    expect(under).toEqual([]);
    expect(await setAddrs('l6_r')).toContain(SVC6);
  });

  it('several answers all learned; over TCP too', async () => {
    const r = await runApp('multi.listed.test', { transport: 'tcp' });
    expect([...r.addrs].sort()).toEqual([...MULTI].sort());
    const set = await setAddrs('l4_r');
    for (const a of MULTI) expect(set).toContain(a);
  });

  it('a tunnelled app’s query goes out through its tunnel (the stub carries its mark)', async () => {
    let r: AppResult | undefined;
    const under = await capture(ul, 'port 53', async () => {
      const onTun = await capture(tun, 'port 53', async () => {
        r = await runApp('plain.test', { uid: TUNNELLED_UID });
      });
      expect(onTun.length).toBeGreaterThan(0);
    });
    expect(r!.addrs).toEqual([PLAIN]);
    expect(under).toEqual([]);
  });

  it('per-app DNS: the query goes to the tunnel’s resolver through the tunnel, and learns', async () => {
    await nsExec(C, 'nft', ['flush', 'set', 'inet', 'awg', 'l4_r']);
    let r: AppResult | undefined;
    const under = await capture(ul, 'port 53', async () => {
      const onTun = await capture(tun, `dst host ${TUNNEL_RESOLVER} and port 53`, async () => {
        r = await runApp('svc.listed.test', { uid: PER_APP_UID });
      });
      expect(onTun.length).toBeGreaterThan(0);
    });
    expect(r!.addrs).toEqual([SVC]);
    expect(under).toEqual([]);
    expect(await setAddrs('l4_r')).toContain(SVC);
  });

  it('TTL expiry removes the element only after its connection ended', async () => {
    // TTL 2 s; the connection stays open 5 s
    const held = runApp('short.listed.test', { connect: true, hold: 5000 });
    await until(async () => (await setAddrs('l4_r')).includes(SHORT), 'short learned');
    await sleep(3500);
    // past the TTL, the connection still open: kept
    expect(await setAddrs('l4_r')).toContain(SHORT);
    const r = await held;
    expect(r.out).toContain('closed');
    // closed: gone within a few expiry passes (the TIME_WAIT entry is not "open")
    await until(async () => !(await setAddrs('l4_r')).includes(SHORT), 'short expired', 8000);
  });

  it('resync re-adds the book after the sets were emptied (a table replace)', async () => {
    await runApp('svc.listed.test');
    await nsExec(C, 'nft', ['flush', 'set', 'inet', 'awg', 'l4_r']);
    expect(await setAddrs('l4_r')).not.toContain(SVC);
    await stubCommand('SIGUSR1', /resynced/);
    expect(await setAddrs('l4_r')).toContain(SVC);
  });

  it('latency: stub vs dnsmasq directly (the redirect removed)', async () => {
    const via = (await runApp('svc.listed.test', { count: 200 })).ms;
    const stats = JSON.parse(await stubCommand('SIGUSR2', /\{.*\}/)) as Record<string, number>;
    expect(stats.learnedAnswers).toBeGreaterThan(0);
    expect(stats.installFailures).toBe(0);
    // without the redirect (last test: the table stays so)
    await nsExec(C, 'nft', ['flush', 'chain', 'inet', 'awg', 'nat_out']);
    const direct = (await runApp('svc.listed.test', { count: 200 })).ms;
    process.stdout.write(
      `dns stub: median lookup ${via.toFixed(3)} ms through the stub (listed: learned each time), ${direct.toFixed(3)} ms direct; stats ${JSON.stringify(stats)}\n`,
    );
  });
});
