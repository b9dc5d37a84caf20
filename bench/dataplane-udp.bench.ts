/**
 * Step 3 micro-benchmark of the UDP send path on loopback: the engine's `UdpBind.send` (numeric
 * lookup, shared callback) against the anchor, node:dgram with its default per-datagram
 * `dns.lookup` (what UdpBind did before), same socket type, same 1,440-byte datagrams,
 * alternated in the same run. Reports datagrams per second of the sending loop (CPU-bound
 * on the JS side; the receiver only counts).
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { UdpBind } from '../src/dataplane/conn/udp.js';
import { median, type Sample } from './lib.js';

const SIZE = 1440;

async function receiver(): Promise<{ port: number; close(): void; count(): number }> {
  const r = createSocket('udp4');
  let n = 0;
  r.on('message', () => n++);
  r.bind(0, '127.0.0.1');
  await once(r, 'listening');
  return { port: r.address().port, close: () => r.close(), count: () => n };
}

/** Sends `total` datagrams in bursts of 64, yielding between bursts; returns datagrams/s. */
async function drive(send: (b: Buffer) => void, total: number): Promise<number> {
  const b = Buffer.alloc(SIZE, 0x5a);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < total; i += 64) {
    for (let k = 0; k < 64; k++) send(b);
    await new Promise((r) => setImmediate(r));
  }
  return total / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function dataplaneUdpBench(smoke: boolean): Promise<Sample[]> {
  const total = smoke ? 5_000 : 100_000;
  const runs = smoke ? 1 : 7;
  const rx = await receiver();
  const bind = new UdpBind('127.0.0.1');
  await bind.open(0);
  const anchor = createSocket('udp4');
  anchor.bind(0, '127.0.0.1');
  await once(anchor, 'listening');
  const to = { address: '127.0.0.1', port: rx.port };
  const ours: number[] = [];
  const base: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      ours.push(await drive((b) => bind.send([b], to), total));
      base.push(await drive((b) => anchor.send(b, rx.port, '127.0.0.1', () => {}), total));
    }
  } finally {
    await bind.close();
    anchor.close();
    rx.close();
  }
  const ratio = ours.map((x, i) => x / base[i]!);
  return [
    {
      name: 'UdpBind.send 1440-byte datagrams',
      unit: 'datagrams/s',
      runs: ours,
      median: median(ours),
    },
    {
      name: 'anchor: dgram.send with default lookup',
      unit: 'datagrams/s',
      runs: base,
      median: median(base),
    },
    { name: 'ratio UdpBind / anchor', unit: '×', runs: ratio, median: median(ratio) },
  ];
}
