/**
 * Fuzz targets of the packet decoders: the AmneziaWG framing (src/dataplane/awg/codec.ts),
 * the Noise messages (src/dataplane/noise) and the device's receive path
 * (src/dataplane/device/receive.ts), over the in-memory network.
 *
 * packets/classify       arbitrary datagrams under arbitrary valid AWG parameters → the
 *                        readings never throw, each is a message of its kind's size inside
 *                        the datagram, at most one per kind, transport last.
 * packets/frame          a message framed by the sender (prefix, H type, header protection,
 *                        random trailers) → among the receiver's readings of the datagram
 *                        is that kind with the same bytes.
 * packets/junk           arbitrary datagrams (raw, or correctly framed around random
 *                        bodies, or transport headers with a live receiver index) into a
 *                        device with a peer → no reply, no TUN write, no handshake, no throw.
 * packets/initiation     a fresh valid initiation, mutated → the responder answers only if
 *                        the authenticated bytes (type … mac1) are those that were sent;
 *                        unmutated, it answers.
 * packets/transport      a valid transport datagram, mutated → the TUN gets nothing or
 *                        exactly the packet that was sent; a replay is dropped.
 */
import { describe, expect, it } from 'vitest';
import { AwgCodec } from '../../src/dataplane/awg/codec.js';
import { seededRandom } from '../../src/dataplane/awg/random.fake.js';
import {
  type AwgParams,
  defaultAwgParams,
  validateAwgParams,
} from '../../src/dataplane/awg/params.js';
import { range } from '../../src/dataplane/awg/range.js';
import type { Endpoint } from '../../src/dataplane/conn/bind.js';
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MIN_MESSAGE_SIZE,
} from '../../src/dataplane/constants.js';
import { createMessageInitiation } from '../../src/dataplane/device/handshake.js';
import { writeU32 } from '../../src/dataplane/noise/messages.js';
import { hexOf, ipv4, makePair } from '../unit/dataplane/harness.js';
import { bytes } from './arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

const SIZES = [MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_SIZE, MESSAGE_COOKIE_REPLY_SIZE] as const;

/** Valid AWG parameter sets, from plain WireGuard to AWG 3 with header protection. */
const awgParams: fc.Arbitrary<AwgParams> = fc
  .record({
    s: fc.array(
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 12, max: 1200 })),
      { minLength: 4, maxLength: 4 },
    ),
    h: fc.oneof(
      fc.constant(null),
      fc.array(fc.nat({ max: 0x3fffffff }), { minLength: 8, maxLength: 8 }),
    ),
    hpk: fc.option(bytes(32, 32), { nil: null }),
    randomTrailers: fc.boolean(),
  })
  .map(({ s, h, hpk, randomTrailers }) => {
    const p = defaultAwgParams();
    [p.s1, p.s2, p.s3, p.s4] = s as [number, number, number, number];
    if (h) {
      const r = (k: number) =>
        range(
          k * 0x40000000 + Math.min(h[2 * k]!, h[2 * k + 1]!),
          k * 0x40000000 + Math.max(h[2 * k]!, h[2 * k + 1]!),
        );
      [p.h1, p.h2, p.h3, p.h4] = [r(0), r(1), r(2), r(3)];
    }
    if (hpk && hpk.some((b) => b)) {
      p.headerProtectionKey = hpk;
      for (const k of ['s1', 's2', 's3', 's4'] as const) p[k] = Math.max(p[k], 12);
    }
    p.randomTrailers = randomTrailers;
    return p;
  })
  .filter((p) => validateAwgParams(p).length === 0);

describe('fuzz: packets', () => {
  it(
    'packets/classify: any datagram classifies without a throw, inside its bounds',
    { timeout: testTimeout(4) },
    () => {
      fuzzSync(
        'packets/classify',
        4,
        [awgParams, fc.oneof(bytes(0, 1600), bytes(28, 200))],
        (p, d) => {
          const cs = new AwgCodec(p, seededRandom(1)).candidates(Uint8Array.from(d));
          cs.forEach((c, i) => {
            if (c.kind < 4) expect(c.msg.length).toBe(SIZES[c.kind - 1]);
            else {
              expect(c.msg.length).toBeGreaterThanOrEqual(MIN_MESSAGE_SIZE);
              expect(c.msg.length).toBeLessThanOrEqual(d.length);
              expect(i, 'the transport reading comes last').toBe(cs.length - 1);
            }
          });
          expect(new Set(cs.map((c) => c.kind)).size).toBe(cs.length);
        },
      );
    },
  );

  it(
    'packets/frame: the receiver reads each framed message as sent',
    { timeout: testTimeout(4) },
    () => {
      fuzzSync(
        'packets/frame',
        4,
        [
          awgParams,
          fc.integer({ min: 1, max: 4 }),
          bytes(0, 1500),
          fc.nat({ max: 1600 }),
          fc.nat(),
        ],
        (p, kind, body, window, seed) => {
          const tx = new AwgCodec(p, seededRandom(seed));
          const rx = new AwgCodec(p, seededRandom(seed + 1));
          let msg: Uint8Array;
          let d: Uint8Array;
          if (kind < 4) {
            msg = new Uint8Array(SIZES[kind - 1]!);
            msg.set(body.subarray(0, msg.length));
            writeU32(msg, 0, tx.pickType(kind as 1 | 2 | 3));
            d = tx.sealHandshake(kind as 1 | 2 | 3, msg.slice(), window);
          } else {
            msg = new Uint8Array(MIN_MESSAGE_SIZE + body.length);
            msg.set(body, MIN_MESSAGE_SIZE);
            msg.set(body.subarray(0, MIN_MESSAGE_SIZE));
            writeU32(msg, 0, tx.pickType(4));
            d = new Uint8Array(tx.transportPrefix + msg.length);
            d.set(msg, tx.transportPrefix);
            tx.finishTransport(d);
          }
          // the receiver tries each reading until one authenticates; the one sent must be there
          const readings = rx.candidates(d).map((c) => `${c.kind}:${hexOf(c.msg)}`);
          expect(readings, `a kind-${kind} datagram of ${d.length} bytes`).toContain(
            `${kind}:${hexOf(msg)}`,
          );
        },
      );
    },
  );
});

// ---------------------------------------------------------------------------------------
// Devices

const PRESETS: Record<string, Partial<AwgParams>> = {
  wireguard: {},
  awg2: {
    jc: 2,
    jmin: 10,
    jmax: 50,
    s1: 15,
    s2: 30,
    s3: 7,
    s4: 9,
    h1: range(5, 1_000_000_000),
    h2: range(1_000_000_001, 2_000_000_000),
    h3: range(2_000_000_001, 3_000_000_000),
    h4: range(3_000_000_001, 4_000_000_000),
  },
  // wide H1 and random trailers: every datagram longer than s1 + 148 is first tested as an initiation
  awg31wide: {
    s1: 8,
    s2: 40,
    s3: 3,
    s4: 0,
    h1: range(16, 0x7fffffff),
    h2: range(0x80000000, 0x80000fff),
    h3: range(0x90000000, 0x90000fff),
    h4: range(0xa0000000, 0xffffffff),
    randomTrailers: true,
  },
  awg3: {
    s1: 16,
    s2: 20,
    s3: 12,
    s4: 24,
    h1: range(100, 200),
    h2: range(300, 400),
    h3: range(500, 600),
    h4: range(700, 800),
    headerProtectionKey: new Uint8Array(32).fill(7),
    randomTrailers: true,
  },
};

type Mutation = { at: number; xor: number } | { cut: number } | { add: Uint8Array };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ cut: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ add: bytes(1, 40) }) },
);
function mutate(d: Uint8Array, ms: Mutation[]): { out: Uint8Array } {
  let out = Uint8Array.from(d);
  for (const m of ms) {
    if ('xor' in m) {
      if (out.length > 0) out[m.at % out.length]! ^= m.xor;
    } else if ('cut' in m) out = out.subarray(0, Math.max(0, out.length - m.cut));
    else {
      const n = new Uint8Array(out.length + m.add.length);
      n.set(out);
      n.set(m.add, out.length);
      out = n;
    }
  }
  return { out };
}

async function pairFor(preset: string) {
  const pair = await makePair({ awgA: PRESETS[preset] });
  pair.net.hold = true; // nothing moves unless a case delivers it
  return pair;
}

type Pair = Awaited<ReturnType<typeof pairFor>>;

/** Hands `data` to `side`'s bind as if it came from `from`; returns what `side` sent. */
function deliver(pair: Pair, to: Pair['a'], data: Uint8Array, from: Endpoint) {
  const before = pair.net.held.length;
  to.bind.deliver({ from, to: to.bind.localEndpoint!, data });
  const sent = pair.net.held.splice(before).filter((d) => d.from.address === to.outer);
  return sent;
}

const A_EP = { address: '10.0.0.1', port: 51820 };

describe('fuzz: packets through a device', () => {
  for (const preset of Object.keys(PRESETS)) {
    it(
      `packets/junk (${preset}): arbitrary datagrams get no reply, reach no TUN, start no session`,
      { timeout: testTimeout(1) },
      async () => {
        const pair = await pairFor(preset);
        const { a, b } = pair;
        // a live session, so transport headers can name a real receiver index
        pair.net.hold = false;
        a.tun.inject(ipv4('192.168.0.1', '192.168.0.2', 'warm-up'));
        pair.net.flush();
        expect(b.tun.written.length).toBe(1);
        pair.net.hold = true;
        a.tun.inject(ipv4('192.168.0.1', '192.168.0.2', 'sample'));
        const sample = pair.net.held.splice(0).find((d) => d.to.address === b.outer)!.data;
        const events: string[] = [];
        b.dev.on('handshake', () => events.push('handshake'));
        const written = b.tun.written.length;
        const codec = a.dev.codec;
        const framed = fc
          .tuple(fc.integer({ min: 1, max: 3 }), bytes(148, 148), fc.nat({ max: 200 }))
          .map(([k, body, w]) => {
            const msg = body.slice(0, SIZES[k - 1]);
            writeU32(msg, 0, codec.pickType(k as 1 | 2 | 3));
            return codec.sealHandshake(k as 1 | 2 | 3, msg, w);
          });
        const transportLike = fc.tuple(bytes(8, 1400), fc.boolean()).map(([tail, keepIdx]) => {
          const d = Uint8Array.from(sample.subarray(0, codec.transportPrefix + 8));
          const out = new Uint8Array(d.length + tail.length);
          out.set(d);
          out.set(tail, d.length);
          if (!keepIdx) out.set(tail.subarray(0, 4), codec.transportPrefix + 4);
          return out;
        });
        const from = fc.oneof(
          fc.constant(A_EP),
          fc.record({ address: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }) }),
        );
        fuzzSync(
          `packets/junk-${preset}`,
          1,
          [fc.oneof(bytes(0, 1600), framed, transportLike), from],
          (data, src) => {
            const sent = deliver(pair, b, data, src);
            expect(sent, 'the device answered junk').toEqual([]);
            expect(b.tun.written.length, 'junk reached the TUN').toBe(written);
            expect(events).toEqual([]);
          },
        );
      },
    );

    it(
      `packets/initiation (${preset}): only the initiation that was sent is answered`,
      { timeout: testTimeout(1) },
      async () => {
        const pair = await pairFor(preset);
        const { a, b, clock } = pair;
        const peerB = a.dev.peerByKey(b.keys.publicKey)!;
        const rx = new AwgCodec(b.dev.awg, seededRandom(9));
        fuzzSync(
          `packets/initiation-${preset}`,
          1,
          [fc.array(mutation, { maxLength: 4 }), fc.nat({ max: 200 })],
          (ms, window) => {
            clock.advance(100); // past the initiation rate limit, and a later timestamp
            pair.net.held.length = 0;
            const msg = createMessageInitiation(a.dev, peerB, a.dev.codec.pickType(1))!;
            peerB.cookieGenerator.addMacs(msg, clock.now());
            const d = a.dev.codec.sealHandshake(1, msg, window);
            const { out } = mutate(d, ms);
            const answered = deliver(pair, b, out, A_EP).length > 0;
            const c = rx.classify(Uint8Array.from(out));
            const authentic =
              c?.kind === 1 && hexOf(c.msg.subarray(0, 132)) === hexOf(msg.subarray(0, 132));
            if (answered) expect(authentic, 'a mutated initiation was answered').toBe(true);
            if (hexOf(out) === hexOf(d))
              expect(answered, 'the initiation as sent was not answered').toBe(true);
          },
        );
      },
    );

    it(
      `packets/transport (${preset}): a mutated transport packet never reaches the TUN changed`,
      { timeout: testTimeout(1) },
      async () => {
        const pair = await pairFor(preset);
        const { a, b } = pair;
        pair.net.hold = false;
        a.tun.inject(ipv4('192.168.0.1', '192.168.0.2', 'warm-up'));
        pair.net.flush();
        pair.net.hold = true;
        let n = 0;
        fuzzSync(
          `packets/transport-${preset}`,
          1,
          [fc.array(mutation, { maxLength: 4 }), bytes(0, 64), fc.boolean()],
          (ms, payload, replay) => {
            const pkt = ipv4(
              '192.168.0.1',
              '192.168.0.2',
              Buffer.concat([Buffer.from(`#${n++}`), payload]),
            );
            pair.net.held.length = 0;
            a.tun.inject(pkt);
            const d = pair.net.held.splice(0).find((x) => x.to.address === b.outer)!.data;
            const before = b.tun.written.length;
            const { out } = mutate(d, ms);
            deliver(pair, b, out, A_EP);
            const got = b.tun.written.slice(before);
            for (const g of got)
              expect(hexOf(g), 'a changed packet reached the TUN').toBe(hexOf(pkt));
            // bytes after the prefix and type are authenticated: header (receiver, counter) and AEAD
            const s4 = a.dev.codec.transportPrefix;
            const authTouched =
              out.length !== d.length || out.subarray(s4 + 4).some((x, i) => x !== d[s4 + 4 + i]);
            if (authTouched) expect(got, 'a mutated transport packet was accepted').toEqual([]);
            if (hexOf(out) === hexOf(d))
              expect(got.length, 'the packet as sent was dropped').toBe(1);
            if (replay && got.length === 1) {
              deliver(pair, b, out, A_EP);
              expect(b.tun.written.length, 'a replayed packet was accepted').toBe(before + 1);
            }
          },
        );
      },
    );
  }
});
