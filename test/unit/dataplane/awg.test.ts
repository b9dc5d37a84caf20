import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { seal } from '../../../src/dataplane/crypto/aead.js';
import {
  consumeInitiation,
  createInitiation,
  createResponse,
} from '../../../src/dataplane/noise/handshake.js';
import { CookieChecker, CookieGenerator } from '../../../src/dataplane/noise/cookie.js';
import {
  encodeInitiation,
  encodeResponse,
  writeU32,
  writeU64,
} from '../../../src/dataplane/noise/messages.js';
import { AwgCodec, paddingSize } from '../../../src/dataplane/awg/codec.js';
import {
  type AwgParams,
  defaultAwgParams,
  isDefaultAwg,
  validateAwgParams,
} from '../../../src/dataplane/awg/params.js';
import { formatRange, parseRange, pickOne, range } from '../../../src/dataplane/awg/range.js';
import { scriptedRandom, seededRandom } from '../../../src/dataplane/awg/random.fake.js';
import { generateTags, parseTags } from '../../../src/dataplane/awg/tags.js';
import { junkPackets } from '../../../src/dataplane/awg/junk.js';
import { protect } from '../../../src/dataplane/awg/header-protection.js';

const V = JSON.parse(
  readFileSync(new URL('../../fixtures/dataplane/wg-awg-vectors.json', import.meta.url), 'utf8'),
);
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fill = (v: number, n: number) => new Uint8Array(n).fill(v);
const seq = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i);

/** The vector handshake with the given type values; returns mac'ed bare messages. */
function vectorMessages(t1: number, t2: number) {
  const I = V.inputs;
  const iPub = hex(I.init_static_pub);
  const rPub = hex(I.resp_static_pub);
  const m1 = createInitiation({
    localStaticPrivate: hex(I.init_static_priv),
    localStaticPublic: iPub,
    remoteStaticPublic: rPub,
    ephemeralPrivate: hex(I.init_ephemeral_priv),
    payload: hex(I.tai64n_timestamp),
  })!;
  const init = encodeInitiation(
    t1,
    I.init_sender_index,
    m1.ephemeralPublic,
    m1.encryptedStatic,
    m1.encryptedPayload,
  );
  new CookieGenerator(rPub).addMacs(init, 0);
  const r1 = consumeInitiation({
    localStaticPrivate: hex(I.resp_static_priv),
    localStaticPublic: rPub,
    ephemeralPublic: m1.ephemeralPublic,
    encryptedStatic: m1.encryptedStatic,
    encryptedPayload: m1.encryptedPayload,
  })!;
  const m2 = createResponse({
    state: r1.state,
    remoteEphemeral: r1.remoteEphemeral,
    remoteStaticPublic: iPub,
    ephemeralPrivate: hex(I.resp_ephemeral_priv),
    psk: hex(I.psk),
    payload: new Uint8Array(0),
  })!;
  const resp = encodeResponse(
    t2,
    I.resp_sender_index,
    I.init_sender_index,
    m2.ephemeralPublic,
    m2.encryptedPayload,
  );
  new CookieGenerator(iPub).addMacs(resp, 0);
  return { init, resp };
}

function keepaliveMessage(type: number, prefix: number): Uint8Array {
  const d = new Uint8Array(prefix + 32);
  writeU32(d, prefix, type);
  writeU32(d, prefix + 4, V.inputs.resp_sender_index);
  writeU64(d, prefix + 8, 0);
  d.set(seal(hex(V.transport_keys.initiator_send), 0, new Uint8Array(0)), prefix + 16);
  return d;
}

function params(p: Partial<AwgParams>): AwgParams {
  return { ...defaultAwgParams(), ...p };
}

describe('AWG 2.x framing (S prefixes, single-value H) golden vectors', () => {
  const ex = V.awg2_example;
  const p = params({
    s1: 8,
    s2: 12,
    s4: 4,
    h1: range(1234567),
    h2: range(2345678),
    h4: range(3456789),
  });
  it('initiation, response and keepalive', () => {
    const { init, resp } = vectorMessages(1234567, 2345678);
    const codec = new AwgCodec(
      p,
      scriptedRandom({ bytes: [fill(0xa1, 8), fill(0xa2, 12), fill(0xa4, 4)] }),
    );
    expect(codec.pickType(1)).toBe(1234567);
    expect(toHex(codec.sealHandshake(1, init, 500))).toBe(ex.init_hex);
    expect(toHex(codec.sealHandshake(2, resp, 500))).toBe(ex.resp_hex);
    const ka = keepaliveMessage(3456789, 4);
    codec.finishTransport(ka);
    expect(toHex(ka)).toBe(ex.keepalive_hex);
  });
  it('classifies what it framed and drops other sizes/types', () => {
    const codec = new AwgCodec(p, seededRandom(1));
    const c1 = codec.classify(hex(ex.init_hex))!;
    expect(c1.kind).toBe(1);
    expect(c1.msg.length).toBe(148);
    const { init } = vectorMessages(1234567, 2345678);
    expect(toHex(c1.msg)).toBe(toHex(init));
    expect(codec.classify(hex(ex.resp_hex))!.kind).toBe(2);
    expect(codec.classify(hex(ex.keepalive_hex))!.kind).toBe(4);
    expect(codec.classify(hex(V.initiation.hex))).toBeNull(); // plain WG initiation: wrong size and type
    expect(codec.classify(hex(V.keepalive_initiator_counter0.hex))).toBeNull(); // type 4 not in H4
    expect(codec.classify(fill(0, 31))).toBeNull();
  });
});

describe('lenient receive', () => {
  it('accepts an unprefixed 32-byte keepalive from amneziawg-go v0.2.13–v0.2.17', () => {
    const codec = new AwgCodec(params({ s4: 4, h4: range(3456789) }), seededRandom(1));
    const bare = keepaliveMessage(3456789, 0);
    expect(codec.classify(bare)!.kind).toBe(4);
    expect(codec.classify(bare)!.msg.length).toBe(32);
    const wrongType = keepaliveMessage(4, 0);
    expect(codec.classify(wrongType)).toBeNull();
  });
});

describe('AWG 3.x header protection golden vectors', () => {
  const ex = V.awg3_header_protection_example;
  const p = params({
    s1: 16,
    s2: 16,
    s3: 16,
    s4: 16,
    h1: range(1234567),
    h2: range(2345678),
    h3: range(1111111),
    h4: range(3456789),
    headerProtectionKey: hex(ex.header_protection_key),
  });
  it('initiation, response, cookie reply and keepalive', () => {
    const { init, resp } = vectorMessages(1234567, 2345678);
    const codec = new AwgCodec(
      p,
      scriptedRandom({ bytes: [seq(0x10, 16), seq(0x20, 16), seq(0x30, 16), seq(0x40, 16)] }),
    );
    const di = codec.sealHandshake(1, init, 500);
    expect(toHex(di)).toBe(ex.init_hex);
    expect(toHex(di.subarray(16, 20).map((b, i) => b ^ init[i]!))).toBe(ex.typeHash_init);
    expect(toHex(codec.sealHandshake(2, resp, 500))).toBe(ex.resp_hex);
    const checker = new CookieChecker(hex(V.inputs.resp_static_pub), () => new Uint8Array(32));
    checker.setSecret(hex(V.cookie_reply.responder_cookie_secret), 0);
    // the vector reuses the plain-WireGuard cookie body (AD = mac1 of the type-1 initiation)
    const reply = checker.createReply(
      hex(V.initiation.hex),
      V.inputs.init_sender_index,
      hex(V.cookie_reply.source_bytes),
      0,
      hex(V.cookie_reply.nonce),
    );
    writeU32(reply, 0, 1111111);
    expect(toHex(codec.sealHandshake(3, reply, 500))).toBe(ex.cookie_hex);
    const ka = keepaliveMessage(3456789, 16);
    codec.finishTransport(ka);
    expect(toHex(ka)).toBe(ex.keepalive_hex);
  });
  it('de-protects on classification so mac1 verifies', () => {
    const codec = new AwgCodec(p, seededRandom(1));
    const c = codec.classify(hex(ex.init_hex))!;
    expect(c.kind).toBe(1);
    expect(
      new CookieChecker(hex(V.inputs.resp_static_pub), () => new Uint8Array(32)).checkMAC1(c.msg),
    ).toBe(true);
    expect(codec.classify(hex(ex.resp_hex))!.kind).toBe(2);
    expect(codec.classify(hex(ex.cookie_hex))!.kind).toBe(3);
    const k = codec.classify(hex(ex.keepalive_hex))!;
    expect(k.kind).toBe(4);
    expect(toHex(k.msg)).toBe(toHex(keepaliveMessage(3456789, 0)));
    // a different key fails classification
    const other = new AwgCodec({ ...p, headerProtectionKey: fill(0x5d, 32) }, seededRandom(1));
    expect(other.classify(hex(ex.init_hex))).toBeNull();
  });
  it('protect is an involution', () => {
    const d = seq(0, 64);
    protect(fill(1, 32), d, 12, 40);
    expect(toHex(d)).not.toBe(toHex(seq(0, 64)));
    protect(fill(1, 32), d, 12, 40);
    expect(toHex(d)).toBe(toHex(seq(0, 64)));
  });
});

describe('defaults = plain WireGuard', () => {
  it('framing is the identity and classification is by type', () => {
    const codec = new AwgCodec(defaultAwgParams(), seededRandom(3));
    expect(isDefaultAwg(defaultAwgParams())).toBe(true);
    const init = hex(V.initiation.hex);
    expect(toHex(codec.sealHandshake(1, init, 500))).toBe(V.initiation.hex);
    expect(codec.preamble(0)).toEqual([]);
    expect(codec.pickType(1)).toBe(1);
    expect(codec.pickType(4)).toBe(4);
    expect(codec.classify(hex(V.initiation.hex))!.kind).toBe(1);
    expect(codec.classify(hex(V.response.hex))!.kind).toBe(2);
    expect(codec.classify(hex(V.cookie_reply.hex))!.kind).toBe(3);
    expect(codec.classify(hex(V.data_initiator_counter1.hex))!.kind).toBe(4);
    expect(codec.classify(hex(V.initiation.hex).subarray(0, 147))).toBeNull(); // type 1 but wrong size
    const ka = hex(V.keepalive_initiator_counter0.hex);
    codec.finishTransport(ka);
    expect(toHex(ka)).toBe(V.keepalive_initiator_counter0.hex);
  });
  it('padding follows calculatePaddingSize', () => {
    expect(paddingSize(28, 1420)).toBe(4);
    expect(paddingSize(0, 1420)).toBe(0);
    expect(paddingSize(1419, 1420)).toBe(1);
    expect(paddingSize(1420, 1420)).toBe(0);
    expect(paddingSize(1415, 1420)).toBe(5);
    expect(paddingSize(17, 0)).toBe(15);
  });
});

describe('H ranges', () => {
  it('parse/format/pick inclusive', () => {
    expect(parseRange('5')).toEqual({ lo: 5, hi: 5 });
    expect(parseRange('123456-123500')).toEqual({ lo: 123456, hi: 123500 });
    expect(formatRange(range(7, 9))).toBe('7-9');
    expect(() => parseRange('9-7')).toThrow();
    expect(() => parseRange('4294967296')).toThrow();
    expect(() => parseRange('x')).toThrow();
    const rng = scriptedRandom({ ints: [0, 44] });
    expect(pickOne(range(123456, 123500), rng)).toBe(123456);
    expect(pickOne(range(123456, 123500), rng)).toBe(123500);
  });
  it('random types stay within range and classify', () => {
    const p = params({
      h1: range(100, 200),
      h2: range(300, 400),
      h3: range(500, 600),
      h4: range(700, 800),
    });
    const codec = new AwgCodec(p, seededRandom(9));
    for (let i = 0; i < 200; i++) {
      const t = codec.pickType(4);
      expect(t >= 700 && t <= 800).toBe(true);
      const d = new Uint8Array(40);
      writeU32(d, 0, t);
      expect(codec.classify(d)!.kind).toBe(4);
    }
  });
});

describe('transportOnly (the receive path without candidates)', () => {
  it('when it answers, candidates has that one transport reading; when that is the one reading, it answers', () => {
    // narrow H ranges that overlap and sizes that collide, so that handshake readings,
    // transport readings and both at once all occur
    const h = fc.constantFrom(range(1), range(2), range(1, 3), range(3, 4), range(0, 0xffff_ffff));
    fc.assert(
      fc.property(
        fc.record({
          s1: fc.nat(20),
          s2: fc.nat(20),
          s3: fc.nat(20),
          s4: fc.nat(20),
          h1: h,
          h2: h,
          h3: h,
          h4: h,
          randomTrailers: fc.boolean(),
          hp: fc.boolean(),
        }),
        fc.nat(200),
        fc.array(fc.constantFrom(1, 2, 3, 4, 77), { minLength: 4, maxLength: 4 }),
        (q, len, types) => {
          const { hp, ...rest } = q;
          const p = params({ ...rest, headerProtectionKey: hp ? fill(7, 32) : null });
          const codec = new AwgCodec(p, seededRandom(3));
          const d = new Uint8Array(len);
          // a type value at each place a reading would look for one
          for (const [k, at] of [p.s1, p.s2, p.s3, p.s4].entries())
            if (at + 4 <= len) writeU32(d, at, types[k]!);
          const t = Uint8Array.from(d);
          const at = codec.transportOnly(t);
          const c = codec.candidates(Uint8Array.from(d));
          if (at >= 0) {
            expect(at).toBe(p.s4);
            expect(c).toHaveLength(1);
            expect(c[0]!.kind).toBe(4);
            // with header protection both de-protect the transport header the same way
            expect(toHex(c[0]!.msg)).toBe(toHex(t.subarray(at)));
          } else if (c.length === 1 && c[0]!.kind === 4 && c[0]!.msg.length === len - p.s4)
            expect.fail('candidates had only the transport reading at s4');
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('candidates on a Buffer (the native bind hands over views of its receive block)', () => {
  it('a handshake reading stays intact when a transport reading overlaps it (header protection)', () => {
    // H4 the whole u32 range: every datagram also reads as transport at s4, inside the
    // handshake message; de-protecting that header in place must not reach the handshake
    // reading (a Buffer's `slice` is a view: the response then failed mac1)
    const p = params({
      s1: 15,
      s2: 18,
      s4: 23,
      h1: range(100, 200),
      h2: range(300, 400),
      h4: range(0, 0xffff_ffff),
      headerProtectionKey: fill(0x3c, 32),
    });
    const { init, resp } = vectorMessages(150, 350);
    const codec = new AwgCodec(p, seededRandom(5));
    for (const [kind, msg] of [
      [1, init],
      [2, resp],
    ] as const) {
      const d = Buffer.from(codec.sealHandshake(kind, msg, 500));
      const c = codec.candidates(d);
      expect(c.map((x) => x.kind)).toEqual([kind, 4]);
      expect(toHex(c[0]!.msg)).toBe(toHex(msg));
      const mac1Key = kind === 1 ? V.inputs.resp_static_pub : V.inputs.init_static_pub;
      expect(new CookieChecker(hex(mac1Key), () => new Uint8Array(32)).checkMAC1(c[0]!.msg)).toBe(
        true,
      );
    }
  });
});

describe('junk (Jc/Jmin/Jmax)', () => {
  it('sizes in [jmin, jmax) from the injected source', () => {
    const rng = scriptedRandom({ ints: [0, 499], bytes: [fill(1, 500), fill(2, 999)] });
    const j = junkPackets(2, 500, 1000, rng);
    expect(j.map((x) => x.length)).toEqual([500, 999]);
    expect(j[1]![0]).toBe(2);
    expect(junkPackets(3, 40, 40, seededRandom(1)).map((x) => x.length)).toEqual([40, 40, 40]);
    expect(junkPackets(0, 10, 20, seededRandom(1))).toEqual([]);
  });
  it('preamble = I1..I5 in order then junk', () => {
    const p = params({
      jc: 2,
      jmin: 10,
      jmax: 11,
      i: ['<b 0xaa>', null, '<b 0xbbcc><t>', null, null],
    });
    const out = new AwgCodec(p, seededRandom(5)).preamble(1_700_000_000_000);
    expect(out.map((x) => x.length)).toEqual([1, 6, 10, 10]);
    expect(toHex(out[0]!)).toBe('aa');
    expect(toHex(out[1]!)).toBe('bbcc6553f100');
  });
  it('a preamble drawn ahead is the one sent next, with the time of its sending, used once', () => {
    const p = params({
      jc: 2,
      jmin: 10,
      jmax: 20,
      i: ['<r 3><t><b 0xee>', null, null, null, '<rd 2>'],
    });
    const ahead = new AwgCodec(p, seededRandom(7));
    ahead.preparePreamble();
    const made = new AwgCodec(p, seededRandom(7)).preamble(1_700_000_000_000);
    // the same draws as a preamble made when sent; the timestamp is written at sending
    const sent = ahead.preamble(1_700_000_000_000);
    expect(sent.map(toHex)).toEqual(made.map(toHex));
    expect(toHex(sent[0]!.subarray(3, 8))).toBe('6553f100ee');
    // used once: the next preamble is drawn anew
    expect(ahead.preamble(0).map(toHex)).not.toEqual(sent.map(toHex));
    // nothing to draw without I-packets and junk
    const none = new AwgCodec(params({}), seededRandom(1));
    none.preparePreamble();
    expect(none.preamble(0)).toEqual([]);
  });
});

describe('I-packet tag language', () => {
  it('generates golden bytes', () => {
    const tags = parseTags('<b 0xdeadbeef> junk outside <r 3><rc 4><rd 3><t><dz 2><d><ds>')!;
    const rng = scriptedRandom({ bytes: [hex('010203'), hex('00193334'), hex('090a0b')] });
    expect(toHex(generateTags(tags, rng, 1_700_000_000_999))).toBe(
      'deadbeef' +
        '010203' +
        Buffer.from('azZa').toString('hex') +
        Buffer.from('901').toString('hex') +
        '6553f100' +
        '0000',
    );
  });
  it('b without 0x, whitespace inside tags', () => {
    expect(toHex(generateTags(parseTags('<b  00ff   >')!, seededRandom(1), 0))).toBe('00ff');
  });
  it('empty or tag-less value = unset', () => {
    expect(parseTags('')).toBeNull();
    expect(parseTags('no tags here')).toBeNull();
  });
  it.each([
    '<c>',
    '<x 1>',
    '<>',
    '<b 0xabc>',
    '<b>',
    '<b 0xzz>',
    '<r>',
    '<r -1>',
    '<r 1.5>',
    '<rc x>',
    '<b 0xaa',
    '<r 70000>',
  ])('rejects %s', (s) => {
    expect(() => parseTags(s)).toThrow();
  });
});

describe('parameter validation (HEAD rules)', () => {
  it('accepts defaults and the amneziawg-go TestAWGDevicePing set', () => {
    expect(validateAwgParams(defaultAwgParams())).toEqual([]);
    const p = params({
      jc: 5,
      jmin: 500,
      jmax: 1000,
      s1: 15,
      s2: 18,
      s3: 20,
      s4: 25,
      h1: range(123456, 123500),
      h2: range(67543, 67550),
      h3: range(123123, 123200),
      h4: range(32345, 32350),
    });
    expect(validateAwgParams(p)).toEqual([]);
    expect(isDefaultAwg(p)).toBe(false);
  });
  it('rejects overlapping headers (inclusive), default collisions included', () => {
    expect(validateAwgParams(params({ h1: range(10, 20), h2: range(20, 30) })).join()).toMatch(
      /h1=10-20 and h2=20-30/,
    );
    expect(validateAwgParams(params({ h1: range(2) })).join()).toMatch(/overlap/);
  });
  it('header protection needs every S ≥ 12', () => {
    const e = validateAwgParams(
      params({ headerProtectionKey: fill(1, 32), s1: 12, s2: 12, s3: 11, s4: 12 }),
    );
    expect(e).toEqual(['s3 must be at least 12 when header protection is on']);
    expect(validateAwgParams(params({ headerProtectionKey: new Uint8Array(32) }))).toEqual([]); // zero key = off
  });
  it('rejects jmin > jmax, oversize S, bad I tags', () => {
    const e = validateAwgParams(
      params({ jc: 1, jmin: 10, jmax: 5, s1: 70000, i: [null, '<c>', null, null, null] }),
    );
    expect(e.join('\n')).toMatch(/jmin/);
    expect(e.join('\n')).toMatch(/s1/);
    expect(e.join('\n')).toMatch(/i2: unknown tag <c>/);
  });
});

describe('content padding addition / random trailers', () => {
  it('content padding is capped at the MTU', () => {
    const codec = new AwgCodec(params({ contentPaddingAddition: range(100) }), seededRandom(1));
    expect(codec.transportPadding(28, 1420, 500)).toBe(100);
    expect(codec.transportPadding(1400, 1420, 500)).toBe(20);
    // a full-size packet gets none (amneziawg-go takes a length modulo the MTU only past it)
    expect(codec.transportPadding(1420, 1420, 500)).toBe(0);
    expect(codec.transportPadding(1421, 1420, 500)).toBe(100);
  });
  it('random trailers: handshake datagrams grow, receiver with trailers on accepts and truncates', () => {
    const p = params({ randomTrailers: true, s1: 8 });
    const codec = new AwgCodec(p, scriptedRandom({ ints: [40] }));
    const { init } = vectorMessages(1, 2);
    const d = codec.sealHandshake(1, init, 500);
    expect(d.length).toBe(8 + 148 + 40);
    const c = codec.classify(d)!;
    expect(c.kind).toBe(1);
    expect(c.msg.length).toBe(148);
    expect(new AwgCodec({ ...p, randomTrailers: false }, seededRandom(1)).classify(d)).toBeNull();
  });
  it('an initiation datagram drawn ahead is the one sealed next for that window, used once', () => {
    const hpk = new Uint8Array(32).fill(7);
    const p = params({ randomTrailers: true, s1: 15, headerProtectionKey: hpk });
    const { init } = vectorMessages(1, 2);
    const ahead = new AwgCodec(p, seededRandom(9));
    ahead.prepareInitiationFrame(500);
    ahead.prepareInitiationFrame(500); // already drawn for this window: kept
    // the same draws as a datagram framed at sending (prefix, trailer, protection)
    const made = new AwgCodec(p, seededRandom(9)).sealHandshake(1, init, 500);
    const sent = ahead.sealHandshake(1, init, 500);
    expect(toHex(sent)).toBe(toHex(made));
    const c = new AwgCodec(p, seededRandom(1)).classify(sent.slice())!;
    expect(c.kind).toBe(1);
    expect(toHex(c.msg)).toBe(toHex(init));
    // used once: the next one is drawn anew
    expect(toHex(ahead.sealHandshake(1, init, 500))).not.toBe(toHex(sent));
    // drawn for another window (the peer's grew meanwhile): drawn anew at sending, trailer
    // within the window sealed for
    ahead.prepareInitiationFrame(500);
    for (let k = 0; k < 20; k++) {
      const d = ahead.sealHandshake(1, init, 200);
      expect(d.length).toBeLessThan(200);
    }
    // only initiations take it; nothing to draw for plain WireGuard framing
    const r = ahead.sealHandshake(2, init.subarray(0, 92), 500);
    expect(r.length).toBeGreaterThanOrEqual(92);
    const plain = new AwgCodec(params({}), seededRandom(3));
    plain.prepareInitiationFrame(500);
    expect(toHex(plain.sealHandshake(1, init, 500))).toBe(toHex(init));
  });
  it('random trailers are written into the datagram by a source that fills in place', () => {
    const p = params({ randomTrailers: true, s1: 8 });
    const calls: [number, number][] = [];
    const rng = {
      bytes: (n: number) => new Uint8Array(n).fill(0x11),
      fill: (out: Uint8Array, off: number, n: number) => {
        calls.push([off, n]);
        out.fill(0xee, off, off + n);
      },
      intn: (n: number) => Math.min(100, n - 1),
    };
    const { init } = vectorMessages(1, 2);
    const d = new AwgCodec(p, rng).sealHandshake(1, init, 500);
    expect(d.length).toBe(8 + 148 + 100);
    expect(calls).toContainEqual([8 + 148, 100]);
    expect([...d.subarray(8 + 148)].every((b) => b === 0xee)).toBe(true);
    expect(Buffer.from(d.subarray(8, 8 + 148)).equals(Buffer.from(init))).toBe(true);
  });
});
