/** Counterexamples found by test/fuzz/packets.fuzz.ts, kept as explicit regression tests. */
import { describe, expect, it } from 'vitest';
import { AwgCodec } from '../../../src/dataplane/awg/codec.js';
import { seededRandom } from '../../../src/dataplane/awg/random.fake.js';
import { defaultAwgParams } from '../../../src/dataplane/awg/params.js';
import { range } from '../../../src/dataplane/awg/range.js';
import { writeU32 } from '../../../src/dataplane/noise/messages.js';
import { hexOf, ipv4, makePair } from '../dataplane/harness.js';

describe('packets/frame and packets/transport', () => {
  // packets/frame seed 1948239775: with random trailers a 160-byte cookie reply (s3 16 + 64 +
  // 80 trailer) is also s1 + 148 long, and the 4 bytes at s1 fell in the wide H1 range: the
  // receiver read it as an initiation only, failed mac1 and dropped it
  it('offers every reading of an ambiguous datagram, the one sent included', () => {
    const p = defaultAwgParams();
    Object.assign(p, {
      s1: 12,
      s2: 12,
      s3: 16,
      s4: 12,
      h1: range(0, 550521456),
      h2: range(1073741824),
      h3: range(2147483648, 2147483649),
      h4: range(3221225472),
      randomTrailers: true,
    });
    let found = 0;
    for (let seed = 0; seed < 200; seed++) {
      const tx = new AwgCodec(p, seededRandom(seed));
      const msg = new Uint8Array(64);
      writeU32(msg, 0, tx.pickType(3));
      const d = tx.sealHandshake(3, msg.slice(), 176);
      const cs = new AwgCodec(p, seededRandom(1)).candidates(d);
      expect(cs.map((c) => `${c.kind}:${hexOf(c.msg)}`)).toContain(`3:${hexOf(msg)}`);
      if (cs[0]!.kind === 1) found++;
    }
    expect(found).toBeGreaterThan(0); // the ambiguity itself is real: some read as initiations first
  });

  // packets/transport (awg31wide) seed -1313640614: with random trailers every transport
  // datagram longer than s1 + 148 was read as an initiation whenever its bytes at s1 fell in
  // H1 (here half of the u32 range), and dropped when mac1 failed
  it('delivers every transport packet with random trailers and a wide H1', async () => {
    const awg = {
      s1: 8,
      s2: 40,
      s3: 3,
      s4: 0,
      h1: range(16, 0x7fffffff),
      h2: range(0x80000000, 0x80000fff),
      h3: range(0x90000000, 0x90000fff),
      h4: range(0xa0000000, 0xffffffff),
      randomTrailers: true,
    };
    const { a, b, net } = await makePair({ awgA: awg });
    const sent: string[] = [];
    for (let i = 0; i < 64; i++) {
      const pkt = ipv4('192.168.0.1', '192.168.0.2', `packet ${i} `.repeat(1 + (i % 20)));
      sent.push(hexOf(pkt));
      a.tun.inject(pkt);
      net.flush();
    }
    expect(b.tun.written.map(hexOf)).toEqual(sent);
  });
});
