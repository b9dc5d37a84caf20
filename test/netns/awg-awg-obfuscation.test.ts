/**
 * AmneziaWG on the wire, awg ↔ awg: two namespaces, each with `awg apply` of an amneziawg
 * tunnel, a veth between them captured with `tcpdump -w`. The pcap is parsed here and must
 * show, for the first handshake: the I-packets (their literal bytes and lengths), exactly Jc
 * junk datagrams sized within [Jmin, Jmax], an initiation of 148+S1 bytes whose type field
 * (after the S1 prefix) lies in H1, a response of 92+S2 in H2, and transport datagrams
 * (32+S4+16n bytes, told from junk by their receiver index) in H4, and nothing else. A lost
 * response must bring a retransmitted initiation with its own I-packets and junk. Mismatched S
 * or H parameters must not connect.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import { awgConfig, pingEventually, pingOk, sleep } from './interop-wg.js';

const skip = requireNetnsPrereqs(['tcpdump', 'ping']);

// ---------------------------------------------------------------------------------------
// a tiny pcap reader (classic libpcap, Ethernet link type, IPv4/UDP only)

interface Udp {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
  /** capture time, seconds */
  t: number;
}

function parsePcap(b: Buffer): Udp[] {
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`link type ${u32(20)}, expected Ethernet`);
  const out: Udp[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const t = u32(o) + u32(o + 4) / 1e6;
    const incl = u32(o + 8);
    const f = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    if (f.length < 14 + 20 + 8 || f.readUInt16BE(12) !== 0x0800) continue;
    const ip = f.subarray(14);
    if (ip[9] !== 17) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const udp = ip.subarray(ihl);
    const len = udp.readUInt16BE(4);
    out.push({
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
      sport: udp.readUInt16BE(0),
      dport: udp.readUInt16BE(2),
      payload: Buffer.from(udp.subarray(8, len)),
      t,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------

interface ParamSet {
  name: string;
  jc: number;
  jmin: number;
  jmax: number;
  s1: number;
  s2: number;
  s3: number;
  s4: number;
  h: [number, number][];
  /** I1..In tag strings and the literal prefix + total length each produces */
  i: { tag: string; prefix: string; length: number }[];
}

const QUIC = 'c70000000108ce1bf31eec7d93360000449e';
const SETS: ParamSet[] = [
  {
    name: 'recommended-style: Jc 4, S1-S4 small, wide H ranges, QUIC-like I1',
    jc: 4,
    jmin: 40,
    jmax: 70,
    s1: 15,
    s2: 18,
    s3: 20,
    s4: 8,
    h: [
      [471800590, 471800690],
      [1246894907, 1246895000],
      [923637689, 923637690],
      [1769581055, 1869581055],
    ],
    i: [{ tag: `<b 0x${QUIC}><r 32><t>`, prefix: QUIC, length: 18 + 32 + 4 }],
  },
  {
    name: 'heavy: Jc 10 up to 1000 bytes, large S, two I-packets',
    jc: 10,
    jmin: 100,
    jmax: 1000,
    s1: 68,
    s2: 149,
    s3: 32,
    s4: 16,
    h: [
      [100000, 200000],
      [300000, 400000],
      [500000, 600000],
      [700000, 800000],
    ],
    i: [
      { tag: `<b 0x${QUIC}><r 32><t>`, prefix: QUIC, length: 54 },
      { tag: '<b 0xdeadbeef><rd 8><rc 8>', prefix: 'deadbeef', length: 20 },
    ],
  },
  {
    name: 'fixed: one fixed-size junk, no prefixes, single H values',
    jc: 1,
    jmin: 64,
    jmax: 64,
    s1: 0,
    s2: 0,
    s3: 0,
    s4: 0,
    h: [
      [1234567, 1234567],
      [2345678, 2345678],
      [3456789, 3456789],
      [4567890, 4567890],
    ],
    i: [],
  },
];

function obfuscation(p: ParamSet): Record<string, number | string> {
  const o: Record<string, number | string> = {
    jc: p.jc,
    jmin: p.jmin,
    jmax: p.jmax,
    s1: p.s1,
    s2: p.s2,
    s3: p.s3,
    s4: p.s4,
  };
  p.h.forEach(([lo, hi], k) => (o[`h${k + 1}`] = lo === hi ? lo : `${lo}-${hi}`));
  p.i.forEach((x, k) => (o[`i${k + 1}`] = x.tag));
  return o;
}

const inH = (v: number, [lo, hi]: [number, number]) => v >= lo && v <= hi;

/** one pair's namespaces, envs and capture, filled as they are made (cleanup takes what is there) */
interface Pair {
  nsA: string;
  nsB: string;
  ifB: string;
  envA?: AwgEnv | undefined;
  envB?: AwgEnv | undefined;
  capture?: NsProcess | undefined;
}

async function closePair(p: Pair): Promise<void> {
  await p.capture?.kill(1000);
  p.capture = undefined;
  if (p.envA && p.nsA) await awg(p.nsA, p.envA, ['down']).catch(() => undefined);
  if (p.envB && p.nsB) await awg(p.nsB, p.envB, ['down']).catch(() => undefined);
  for (const ns of [p.nsA, p.nsB]) if (ns) await destroyNetns(ns);
  p.nsA = p.nsB = '';
  cleanupAwgEnv(p.envA);
  cleanupAwgEnv(p.envB);
  p.envA = p.envB = undefined;
}

describe.skipIf(skip)('AmneziaWG awg ↔ awg on the wire', () => {
  // the pair of the test running (the sequential tests); its parts by their old names
  let cur: Pair = { nsA: '', nsB: '', ifB: '' };
  const N = 160 + Math.floor(Math.random() * 40) * 2;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const TA = `10.200.${N + 1}.1`;
  const TB = `10.200.${N + 1}.2`;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
  });

  afterEach(async () => {
    await closePair(cur);
  });

  /** Namespaces + veth; B (responder, fixed port) is applied first, A (initiator) after. */
  async function pair(
    pa: ParamSet,
    pb: ParamSet,
    withCapture: boolean,
    beforeA?: (nsA: string) => Promise<void>,
  ): Promise<string> {
    cur = { nsA: '', nsB: '', ifB: '' };
    return openPair(cur, pa, pb, withCapture, beforeA);
  }

  /** `pair()` into `into` (filled as it goes: closePair(into) cleans up after a failure too) */
  async function openPair(
    into: Pair,
    pa: ParamSet,
    pb: ParamSet,
    withCapture: boolean,
    beforeA?: (nsA: string) => Promise<void>,
  ): Promise<string> {
    const nsA = (into.nsA = await createNetns('aoa'));
    const nsB = (into.nsB = await createNetns('aob'));
    const veth = await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    const ifB = (into.ifB = veth.ifB);
    // The engines send with UDP GSO: a burst (I-packets and junk, a run of transport messages)
    // leaves as one super-packet that the kernel segments at the last device, and veth passes it
    // on whole, so a capture would see one frame for several datagrams. With at most one segment
    // per packet the kernel segments before the veth, and the capture sees the datagrams a
    // physical link carries.
    for (const [ns, dev] of [
      [nsA, veth.ifA],
      [nsB, veth.ifB],
    ] as const) {
      const r = await nsExec(ns, 'ip', ['link', 'set', 'dev', dev, 'gso_max_segs', '1']);
      expect(r.code, r.stderr).toBe(0);
    }
    const envA = (into.envA = makeAwgEnv());
    const envB = (into.envB = makeAwgEnv());
    const a = wgKeyPair();
    const b = wgKeyPair();
    const cfgB = writeConfig(
      envB,
      'b.yaml',
      awgConfig({
        tunnel: 'ob',
        privateKey: b.privateKey,
        address: `${TB}/24`,
        listenPort: 51820,
        peerPublicKey: a.publicKey,
        allowedIPs: [`${TA}/32`],
        obfuscation: obfuscation(pb),
      }),
    );
    const rb = await awg(nsB, envB, ['apply', '-f', cfgB]);
    expect(rb.code, show(rb)).toBe(0);
    const pcap = join(envB.dir, 'veth.pcap');
    if (withCapture) {
      const capture = (into.capture = nsSpawn(nsB, 'tcpdump', [
        '-U',
        '--immediate-mode',
        '-n',
        '-s',
        '0',
        '-i',
        ifB,
        '-w',
        pcap,
        'udp',
      ]));
      for (let i = 0; i < 100 && !capture.output().includes('listening on'); i++) await sleep(20);
      expect(capture.output()).toContain('listening on');
    }
    const cfgA = writeConfig(
      envA,
      'a.yaml',
      awgConfig({
        tunnel: 'oa',
        privateKey: a.privateKey,
        address: `${TA}/24`,
        listenPort: 51821,
        peerPublicKey: b.publicKey,
        endpoint: `${UB}:51820`,
        allowedIPs: [`${TB}/32`],
        obfuscation: obfuscation(pa),
      }),
    );
    await beforeA?.(nsA);
    const ra = await awg(nsA, envA, ['apply', '-f', cfgA]);
    expect(ra.code, show(ra)).toBe(0);
    return pcap;
  }

  for (const p of SETS) {
    it(`${p.name}: junk, I-packets, prefixes and headers on the wire`, async () => {
      const pcap = await pair(p, p, true);
      expect(await pingEventually(cur.nsA, TB, 20_000)).toBe(true);
      expect(await pingOk(cur.nsB, TA)).toBe(true);
      await sleep(300);
      await cur.capture!.kill(2000);
      const pkts = parsePcap(readFileSync(pcap));
      const aToB = pkts.filter((x) => x.src === UA && x.dst === UB && x.dport === 51820);
      const bToA = pkts.filter((x) => x.src === UB && x.dst === UA && x.sport === 51820);
      const sizes = aToB.map((x) => x.payload.length);

      // everything A sent up to and including its first initiation
      const initAt = aToB.findIndex(
        (x) => x.payload.length === 148 + p.s1 && inH(x.payload.readUInt32LE(p.s1), p.h[0]!),
      );
      expect(initAt, `A→B sizes ${sizes.join(',')}`).toBeGreaterThanOrEqual(0);
      const before = aToB.slice(0, initAt);
      expect(before.length, `A→B sizes ${sizes.join(',')}`).toBe(p.i.length + p.jc);
      // I-packets first, in order, byte-exact where the tag is literal
      p.i.forEach((ip, k) => {
        expect(before[k]!.payload.length).toBe(ip.length);
        expect(before[k]!.payload.subarray(0, ip.prefix.length / 2).toString('hex')).toBe(
          ip.prefix,
        );
      });
      const junk = before.slice(p.i.length);
      expect(junk).toHaveLength(p.jc);
      for (const j of junk) {
        expect(j.payload.length).toBeGreaterThanOrEqual(p.jmin);
        expect(j.payload.length).toBeLessThanOrEqual(p.jmax);
      }

      // the responses: 92+S2, header in H2
      const isInit = (x: Udp) =>
        x.payload.length === 148 + p.s1 && inH(x.payload.readUInt32LE(p.s1), p.h[0]!);
      const isResp = (x: Udp) =>
        x.payload.length === 92 + p.s2 && inH(x.payload.readUInt32LE(p.s2), p.h[1]!);
      const responses = bToA.filter(isResp);
      expect(
        responses.length,
        `B→A sizes ${bToA.map((x) => x.payload.length).join(',')}`,
      ).toBeGreaterThan(0);

      // Transport both ways: 32+S4+16n bytes, header in H4. A transport message is told from
      // junk by its receiver index (the sender index of a handshake message the other side
      // sent), not by its size: a retransmitted initiation brings new junk, and junk of
      // 32+S4+16n bytes would pass a size test and then fail the header check by chance.
      const aIdx = new Set(aToB.filter(isInit).map((x) => x.payload.readUInt32LE(p.s1 + 4)));
      const bIdx = new Set(responses.map((x) => x.payload.readUInt32LE(p.s2 + 4)));
      const receiver = (x: Udp) =>
        x.payload.length >= 32 + p.s4 ? x.payload.readUInt32LE(p.s4 + 4) : -1;
      const aT = aToB.slice(initAt + 1).filter((x) => bIdx.has(receiver(x)));
      const bT = bToA.filter((x) => aIdx.has(receiver(x)));
      const transport = [...aT, ...bT];
      expect(aT.length, `A→B sizes ${sizes.join(',')}`).toBeGreaterThanOrEqual(2);
      expect(
        bT.length,
        `B→A sizes ${bToA.map((x) => x.payload.length).join(',')}`,
      ).toBeGreaterThanOrEqual(2);
      for (const t of transport) {
        expect((t.payload.length - 32 - p.s4) % 16).toBe(0);
        expect(inH(t.payload.readUInt32LE(p.s4), p.h[3]!)).toBe(true);
      }
      // everything else on the wire is a handshake message or what precedes an initiation
      const isJunk = (x: Udp) => x.payload.length >= p.jmin && x.payload.length <= p.jmax;
      const isIPacket = (x: Udp) =>
        p.i.some(
          (ip) => x.payload.length === ip.length && x.payload.toString('hex').startsWith(ip.prefix),
        );
      const isCookie = (x: Udp) =>
        x.payload.length === 64 + p.s3 && inH(x.payload.readUInt32LE(p.s3), p.h[2]!);
      const otherA = aToB
        .slice(initAt + 1)
        .filter((x) => !aT.includes(x) && !isInit(x) && !isJunk(x) && !isIPacket(x));
      const otherB = bToA.filter((x) => !bT.includes(x) && !isResp(x) && !isCookie(x));
      expect(
        otherA.map((x) => x.payload.length),
        'A→B unexplained sizes',
      ).toEqual([]);
      expect(
        otherB.map((x) => x.payload.length),
        'B→A unexplained sizes',
      ).toEqual([]);
      // a further initiation is a retransmission (REKEY_TIMEOUT 5 s, less no jitter), not a double
      const initTimes = aToB.filter(isInit).map((x) => x.t);
      for (let k = 1; k < initTimes.length; k++)
        expect(initTimes[k]! - initTimes[k - 1]!).toBeGreaterThan(4.9);
      // headers vary inside a real range (fresh draw per message)
      if (p.h[3]![1] - p.h[3]![0] > 1000) {
        expect(new Set(transport.map((t) => t.payload.readUInt32LE(p.s4))).size).toBeGreaterThan(1);
      }
    });
  }

  it('a lost response: the initiation is sent again, again after the I-packets and junk', async () => {
    const p = SETS[0]!;
    // A drops B's responses (UDP length 8 + 92 + S2) until it has dropped one
    const table = 'awgt_drop_resp';
    const pcap = await pair(p, p, true, async (nsA) => {
      const rules = [
        `add table ip ${table}`,
        `add chain ip ${table} in { type filter hook input priority -10; }`,
        `add rule ip ${table} in udp sport 51820 udp length ${8 + 92 + p.s2} counter drop`,
      ].join('\n');
      const r = await nsExec(nsA, 'nft', ['-f', '-'], { input: rules });
      expect(r.code, r.stderr).toBe(0);
    });
    const dropped = async () => {
      const r = await nsExec(cur.nsA, 'nft', ['-j', 'list', 'table', 'ip', table]);
      const j = JSON.parse(r.stdout) as {
        nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
      };
      return j.nftables
        .flatMap((x) => x.rule?.expr ?? [])
        .some((e) => (e.counter?.packets ?? 0) > 0);
    };
    const ping = pingEventually(cur.nsA, TB, 25_000);
    for (let i = 0; i < 200 && !(await dropped()); i++) await sleep(50);
    expect(await dropped()).toBe(true);
    await nsExec(cur.nsA, 'nft', ['delete', 'table', 'ip', table]);
    expect(await ping).toBe(true);
    await sleep(300);
    await cur.capture!.kill(2000);
    const aToB = parsePcap(readFileSync(pcap)).filter(
      (x) => x.src === UA && x.dst === UB && x.dport === 51820,
    );
    const sizes = aToB.map((x) => x.payload.length).join(',');
    const inits = aToB.flatMap((x, k) =>
      x.payload.length === 148 + p.s1 && inH(x.payload.readUInt32LE(p.s1), p.h[0]!) ? [k] : [],
    );
    expect(inits.length, `A→B sizes ${sizes}`).toBeGreaterThanOrEqual(2);
    // each initiation comes right after its own I-packets and Jc junk datagrams
    let from = 0;
    for (const at of inits.slice(0, 2)) {
      const lead = aToB.slice(at - p.i.length - p.jc, at);
      expect(at - p.i.length - p.jc, `A→B sizes ${sizes}`).toBeGreaterThanOrEqual(from);
      expect(lead[0]!.payload.subarray(0, p.i[0]!.prefix.length / 2).toString('hex')).toBe(
        p.i[0]!.prefix,
      );
      expect(lead[0]!.payload.length).toBe(p.i[0]!.length);
      for (const j of lead.slice(p.i.length)) {
        expect(j.payload.length).toBeGreaterThanOrEqual(p.jmin);
        expect(j.payload.length).toBeLessThanOrEqual(p.jmax);
      }
      from = at + 1;
    }
    expect(aToB[inits[1]!]!.t - aToB[inits[0]!]!.t).toBeGreaterThan(4.9);
    // a fresh sender index per initiation
    const idx = inits.map((k) => aToB[k]!.payload.readUInt32LE(p.s1 + 4));
    expect(new Set(idx).size).toBe(idx.length);
  });

  const base = SETS[0]!;
  const mismatches: [string, ParamSet][] = [
    ['S1 differs', { ...base, s1: base.s1 + 1 }],
    ['S4 differs', { ...base, s4: base.s4 + 4 }],
    ['H1 range differs', { ...base, h: [[5, 10], base.h[1]!, base.h[2]!, base.h[3]!] }],
    [
      'H4 range differs',
      { ...base, h: [base.h[0]!, base.h[1]!, base.h[2]!, [2000000000, 2000001000]] },
    ],
  ];
  // Each waits out 6 s of pings that must fail, on a pair of its own: they run at once
  for (const [what, other] of mismatches) {
    // concurrent tests take expect and onTestFinished from their context
    it.concurrent(`${what}: the tunnel does not come up`, async ({ expect, onTestFinished }) => {
      const own: Pair = { nsA: '', nsB: '', ifB: '' };
      onTestFinished(() => closePair(own));
      await openPair(own, base, other, false);
      expect(await pingEventually(own.nsA, TB, 6_000)).toBe(false);
      expect(await pingOk(own.nsB, TA, 2)).toBe(false);
    });
  }

  it('control: the same parameters on both sides do come up (the mismatch cases can fail)', async () => {
    await pair(base, { ...base }, false);
    expect(await pingEventually(cur.nsA, TB, 20_000)).toBe(true);
  });
});
