import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Device } from '../../../src/dataplane/device/device.js';
import { SimClock } from '../../../src/dataplane/clock.fake.js';
import { MemoryNetwork } from '../../../src/dataplane/conn/memory.fake.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { scriptedRandom } from '../../../src/dataplane/awg/random.fake.js';
import { range } from '../../../src/dataplane/awg/range.js';
import type { AwgParams } from '../../../src/dataplane/awg/params.js';

const V = JSON.parse(
  readFileSync(new URL('../../fixtures/dataplane/wg-awg-vectors.json', import.meta.url), 'utf8'),
);
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const I = V.inputs;

/**
 * The whole stack (device → handshake glue → framing → memory network) with the vector's keys,
 * ephemerals, indices and clock must emit the vector datagrams byte for byte.
 */
async function run(
  awg?: Partial<AwgParams>,
  prefixes: { a?: Uint8Array[]; b?: Uint8Array[] } = {},
) {
  // unix 1700000000.123 s → TAI64N 400000006553f10a07000000 after whitening
  const clock = new SimClock(1_700_000_000_123);
  const net = new MemoryNetwork(clock);
  const ta = new MemoryTun('a');
  const tb = new MemoryTun('b');
  const a = new Device({
    tun: ta,
    bind: net.bind('192.0.2.1'),
    clock,
    random: scriptedRandom({
      bytes: [hex(I.init_ephemeral_priv), ...(prefixes.a ?? [])],
      ints: [I.init_sender_index],
    }),
  });
  const b = new Device({
    tun: tb,
    bind: net.bind('192.0.2.2'),
    clock,
    random: scriptedRandom({
      bytes: [hex(I.resp_ephemeral_priv), ...(prefixes.b ?? [])],
      ints: [I.resp_sender_index],
    }),
  });
  await b.configure({
    privateKey: hex(I.resp_static_priv),
    listenPort: 51820,
    awg,
    peers: [{ publicKey: hex(I.init_static_pub), allowedIps: ['10.0.0.1/32'] }],
  });
  await a.configure({
    privateKey: hex(I.init_static_priv),
    listenPort: 51820,
    awg,
    peers: [
      {
        publicKey: hex(I.resp_static_pub),
        endpoint: '192.0.2.2:51820',
        persistentKeepalive: 25, // the keepalive at up starts the handshake; data follows it

        allowedIps: ['10.0.0.2/32'],
      },
    ],
  });
  await b.up();
  await a.up();
  net.flush();
  ta.inject(hex(V.data_initiator_counter1.plaintext_ip));
  net.flush();
  expect(tb.written.map(toHex)).toEqual([V.data_initiator_counter1.plaintext_ip]);
  return net.sent.map((d) => toHex(d.data));
}

describe('device emits the published vector datagrams', () => {
  it('plain WireGuard: initiation, response, keepalive, data', async () => {
    const sent = await run();
    expect(sent).toEqual([
      V.initiation.hex,
      V.response.hex,
      V.keepalive_initiator_counter0.hex,
      V.data_initiator_counter1.hex,
    ]);
  });

  it('AWG 2.x framing (S1=8, S2=12, S4=4, H1/H2/H4 single values)', async () => {
    const ex = V.awg2_example;
    const awg = {
      s1: 8,
      s2: 12,
      s4: 4,
      h1: range(1234567),
      h2: range(2345678),
      h4: range(3456789),
    };
    const sent = await run(awg, {
      a: [new Uint8Array(8).fill(0xa1), new Uint8Array(4).fill(0xa4)],
      b: [new Uint8Array(12).fill(0xa2)],
    });
    expect(sent.slice(0, 3)).toEqual([ex.init_hex, ex.resp_hex, ex.keepalive_hex]);
  });

  it('AWG 3.x header protection (S=16, key 5c×32)', async () => {
    const ex = V.awg3_header_protection_example;
    const seq = (from: number) => Uint8Array.from({ length: 16 }, (_, i) => from + i);
    const awg = {
      s1: 16,
      s2: 16,
      s3: 16,
      s4: 16,
      h1: range(1234567),
      h2: range(2345678),
      h3: range(1111111),
      h4: range(3456789),
      headerProtectionKey: hex(ex.header_protection_key),
    };
    const sent = await run(awg, { a: [seq(0x10), seq(0x40)], b: [seq(0x20)] });
    expect(sent.slice(0, 3)).toEqual([ex.init_hex, ex.resp_hex, ex.keepalive_hex]);
  });
});
