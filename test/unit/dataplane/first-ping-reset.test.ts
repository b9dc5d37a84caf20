/**
 * The first packet after a peer reset (bench/dataplane.bench.ts `resetVia`: the peer removed
 * and added again over UAPI, then one ping) with AmneziaWG 3.1's parameters, against a peer
 * that keeps its session and applies wireguard-go's checks to each initiation (timestamp
 * strictly newer, none within 20 ms of the last: our own device as B does both). Every first
 * packet must arrive on the first handshake: one that waits for the retransmitted
 * initiation (REKEY_TIMEOUT) is the 5 s first ping the bench saw about once in twenty.
 *
 * The binds here deliver datagrams as Buffers, as the native bind does (views of its receive
 * block): a handshake datagram whose bytes at S4 also fall in the wide H4 range has a transport
 * reading besides its handshake reading (codec.ts `candidates`), and a Buffer's `slice` is a
 * view, so de-protecting the transport reading's header in place corrupted the handshake
 * reading, which then failed mac1 (|H4| / 2^32 ≈ 2.3 % of handshake datagrams per side).
 */
import { describe, expect, it } from 'vitest';
import type { AwgParams } from '../../../src/dataplane/awg/params.js';
import { range } from '../../../src/dataplane/awg/range.js';
import type { MemoryBind } from '../../../src/dataplane/conn/memory.fake.js';
import type { Bind } from '../../../src/dataplane/conn/bind.js';
import { hexOf, ipv4, makePair } from './harness.js';

/** bench/awg-params.ts AWG_3_1 (a fixed header protection key) */
const AWG_3_1: Partial<AwgParams> = {
  jc: 4,
  jmin: 40,
  jmax: 70,
  s1: 15,
  s2: 18,
  s3: 20,
  s4: 23,
  h1: range(471800590, 471800690),
  h2: range(1246894907, 1246895000),
  h3: range(923637689, 923637690),
  h4: range(1769581055, 1869581055),
  i: ['<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>', null, null, null, null],
  headerProtectionKey: new Uint8Array(32).fill(0x3c),
  randomTrailers: true,
  contentPaddingAddition: range(8, 32),
};

/** A memory bind that hands each datagram over as a Buffer, as the native bind does. */
function asBuffers(inner: MemoryBind): Bind {
  return {
    open: (port) => inner.open(port),
    close: () => inner.close(),
    send: (bufs, to) => inner.send(bufs, to),
    onReceive: (cb) => inner.onReceive(cb && ((d, from) => cb(Buffer.from(d), from))),
  };
}

const RESETS = 300;

describe('the first packet after a peer reset (AmneziaWG 3.1, Buffers from the bind)', () => {
  it(`arrives on the first handshake, ${RESETS} resets in a row`, async () => {
    const { a, b, net, advance } = await makePair({
      awgA: AWG_3_1,
      wrapBindA: asBuffers,
      wrapBindB: asBuffers,
      seed: 7,
    });
    const key = hexOf(b.keys.publicKey);
    const late: number[] = [];
    for (let i = 0; i < RESETS; i++) {
      // bench/dataplane-lib.ts RESET_GAP_MS, then the reset as the bench makes it
      advance(100, 10);
      await a.dev.ipcSet(`set=1\npublic_key=${key}\nremove=true\n\n`);
      await a.dev.ipcSet(
        `set=1\npublic_key=${key}\nendpoint=10.0.0.2:51821\nallowed_ip=192.168.0.2/32\n\n`,
      );
      const before = b.tun.written.length;
      a.tun.inject(ipv4('192.168.0.1', '192.168.0.2', `ping ${i}`));
      net.flush(); // initiation → response → the ping, no time passing
      if (b.tun.written.length === before) {
        late.push(i);
        advance(6_000, 100); // the retransmission brings it
        expect(b.tun.written.length).toBe(before + 1);
      }
      const back = a.tun.written.length;
      b.tun.inject(ipv4('192.168.0.2', '192.168.0.1', `pong ${i}`));
      net.flush();
      expect(a.tun.written.length).toBe(back + 1);
    }
    expect(late).toEqual([]);
  });
});
