/**
 * The engine's own CPU per byte, without the kernel: two devices joined in memory, TCP-sized
 * packets through A's send path (what the TUN hands over, split from 64 KiB super-packets as
 * TunFile does: splitTcp) and B's receive path (opened, checked, queued for the TUN), each
 * measured alone as CPU seconds per GB of IP packets (process.cpuUsage, one thread). What is
 * left of a throughput run's engine time once these are taken out is the kernel's (TUN and
 * UDP I/O): `bench/engine-syscalls.ts` measures that side.
 *
 *   npx tsx bench/engine-cpu.ts [--mb=400] [--rounds=5] [--awg=0|1|2|3]
 *
 * `--awg` picks the obfuscation of both devices: 0 plain WireGuard, 1 AmneziaWG 1.0 (junk,
 * S1/S2, single H values), 2 AmneziaWG 2.0 (S3/S4 = 23, H ranges), 3 AmneziaWG 3.1 (2.0 and
 * header protection, random trailers, content padding 8–32). Prints the median of the rounds
 * per stage (send: split + seal + bind; receive: open + checks + TUN queue).
 */
import { execFileSync, spawn } from 'node:child_process';
import { Device } from '../src/dataplane/device/device.js';
import type { Bind, Endpoint } from '../src/dataplane/conn/bind.js';
import type { TunDevice } from '../src/dataplane/tun/tun.js';
import {
  GSO_TCPV4,
  type GroGroup,
  assembleGroup,
  planGro,
  splitTcp,
} from '../src/dataplane/tun/offload.js';
import { generateKeyPair } from '../src/dataplane/crypto/keys.js';
import { range } from '../src/dataplane/awg/range.js';
import type { AwgParams } from '../src/dataplane/awg/params.js';
import { median } from './lib.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const MB = arg('mb', 400);
const ROUNDS = arg('rounds', 5);
const GEN = arg('awg', 0);
/**
 * `--only=split|send|receive|capture|none`: that stage alone, for instruction counts under
 * callgrind (receive includes capturing A's datagrams: subtract `capture`)
 */
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.split('=')[1];
const run = (stage: string) => ONLY === undefined || ONLY === stage;
/**
 * Under `valgrind --tool=callgrind --instr-atstart=no`, `--callgrind` turns collection on
 * for the timed loops only (callgrind_control), so the instruction counts are the stages'.
 */
const CALLGRIND = process.argv.includes('--callgrind');
/**
 * `--perf=FILE`: `perf record -g` of the timed loops only (run node with --perf-basic-prof
 * for the JavaScript frames' names); one file per loop, FILE.N.
 */
const PERF = process.argv.find((a) => a.startsWith('--perf='))?.split('=')[1];
let perf: ReturnType<typeof spawn> | null = null;
let perfFiles = 0;
const collect = async (on: boolean) => {
  if (PERF && on) {
    perf = spawn(
      'perf',
      ['record', '-F', '4999', '-g', '-p', String(process.pid), '-o', `${PERF}.${perfFiles++}`],
      {
        stdio: 'ignore',
      },
    );
    await new Promise((r) => setTimeout(r, 500));
  } else if (PERF && perf) {
    const p = perf;
    perf = null;
    p.kill('SIGINT');
    await new Promise((r) => p.once('exit', r));
  }
  if (!CALLGRIND) return;
  // a major collection now rather than inside the counted loop (node --expose-gc)
  if (on) (globalThis as { gc?: () => void }).gc?.();
  execFileSync('callgrind_control', ['-i', on ? 'on' : 'off', String(process.pid)]);
};

const H = {
  h1: range(100000, 200000),
  h2: range(300000, 400000),
  h3: range(500000, 600000),
  h4: range(700000, 800000),
};
const PARAMS: Record<number, Partial<AwgParams>> = {
  0: {},
  1: {
    jc: 4,
    jmin: 40,
    jmax: 70,
    s1: 15,
    s2: 18,
    h1: range(1234567),
    h2: range(2345678),
    h3: range(3456789),
    h4: range(4567890),
  },
  2: { jc: 4, jmin: 40, jmax: 70, s1: 15, s2: 18, s3: 20, s4: 23, ...H },
  3: {
    jc: 4,
    jmin: 40,
    jmax: 70,
    s1: 15,
    s2: 18,
    s3: 20,
    s4: 23,
    ...H,
    headerProtectionKey: new Uint8Array(32).fill(7),
    randomTrailers: true,
    contentPaddingAddition: range(8, 32),
  },
};
const MTU = GEN >= 2 ? 1397 : 1420;

/**
 * A TUN that hands nothing over by itself and takes what the device writes as TunFile does
 * with offloads (GRO: coalesced into groups behind a virtio header), without the write(2).
 */
class SinkTun implements TunDevice {
  readonly name = 'sink';
  receiver: ((p: Uint8Array[]) => void) | null = null;
  written = 0;
  private readonly groups: GroGroup[] = [];
  private readonly buf = Buffer.alloc(70000);
  mtu(): number {
    return MTU;
  }
  onReceive(cb: ((p: Uint8Array[]) => void) | null): void {
    this.receiver = cb;
  }
  write(packets: Uint8Array[]): void {
    const n = planGro(packets, this.groups);
    for (let i = 0; i < n; i++) {
      const g = this.groups[i]!;
      assembleGroup(g, this.buf);
      for (const p of g.pkts) this.written += p.length;
      g.pkts.length = 0;
    }
  }
  close(): void {}
}

/** A bind wired to its peer in memory; `capture` keeps copies of what is sent instead. */
class PipeBind implements Bind {
  peer: PipeBind | null = null;
  receiver: ((d: Uint8Array, from: Endpoint) => void) | null = null;
  batchEnd: (() => void) | null = null;
  /** 'pass': to the peer at once; 'capture': kept; 'drop': counted only */
  mode: 'pass' | 'capture' | 'drop' = 'pass';
  captured: Uint8Array[] = [];
  sentBytes = 0;
  constructor(readonly self: Endpoint) {}
  open(): Promise<number> {
    return Promise.resolve(this.self.port);
  }
  onReceive(cb: ((d: Uint8Array, from: Endpoint) => void) | null): void {
    this.receiver = cb;
  }
  onBatchEnd(cb: (() => void) | null): void {
    this.batchEnd = cb;
  }
  send(bufs: Uint8Array[]): void {
    for (const b of bufs) {
      this.sentBytes += b.length;
      if (this.mode === 'capture') this.captured.push(Uint8Array.from(b));
      else if (this.mode === 'pass') {
        this.peer!.receiver?.(Uint8Array.from(b), this.self);
        this.peer!.batchEnd?.();
      }
    }
  }
  close(): void {}
}

/** A TCP super-packet as the TUN hands it over with TSO: 64 KiB of payload, MSS for the MTU. */
function superPacket(mss: number): { pkt: Buffer; hdr: Parameters<typeof splitTcp>[1] } {
  const payload = Math.floor(65000 / mss) * mss;
  const p = Buffer.alloc(52 + payload, 0xab);
  p[0] = 0x45;
  p.writeUInt16BE(Math.min(p.length, 0xffff), 2);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = 6;
  p.set([192, 168, 0, 1], 12);
  p.set([192, 168, 0, 2], 16);
  p.writeUInt16BE(40000, 20);
  p.writeUInt16BE(5201, 22);
  p[32] = 8 << 4; // 32-byte TCP header (timestamps)
  p[33] = 0x10;
  p.set([1, 1, 8, 10], 40);
  return {
    pkt: p,
    hdr: { flags: 1, gsoType: GSO_TCPV4, hdrLen: 52, gsoSize: mss, csumStart: 20, csumOffset: 16 },
  };
}

async function main(): Promise<void> {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const tunA = new SinkTun();
  const tunB = new SinkTun();
  const bindA = new PipeBind({ address: '10.0.0.1', port: 51820 });
  const bindB = new PipeBind({ address: '10.0.0.2', port: 51821 });
  bindA.peer = bindB;
  bindB.peer = bindA;
  const resolver = { resolve: async () => [] };
  const a = new Device({ tun: tunA, bind: bindA, resolver });
  const b = new Device({ tun: tunB, bind: bindB, resolver });
  await a.configure({
    privateKey: ka.privateKey,
    listenPort: 51820,
    awg: PARAMS[GEN],
    peers: [
      { publicKey: kb.publicKey, endpoint: '10.0.0.2:51821', allowedIps: ['192.168.0.2/32'] },
    ],
  });
  await b.configure({
    privateKey: kb.privateKey,
    listenPort: 51821,
    awg: PARAMS[GEN],
    peers: [{ publicKey: ka.publicKey, allowedIps: ['192.168.0.1/32'] }],
  });
  await b.up();
  await a.up();
  const mss = MTU - 52;
  const { pkt, hdr } = superPacket(mss);
  // the slab as TunFile lays it out: the read (virtio header, then the packet) at 0, the
  // segments after it
  const slab = Buffer.alloc(1 << 20);
  slab.set(pkt, 10);
  const inSlab = slab.subarray(10, 10 + pkt.length);
  const splitAt = (10 + pkt.length + 7) & ~7;
  const batch: Uint8Array[] = [];
  /** one TUN read as TunFile delivers it: a super-packet split into the slab */
  const read = () => {
    batch.length = 0;
    splitTcp(inSlab, hdr, slab, splitAt, (s, e) => batch.push(slab.subarray(s, e)));
    return batch;
  };
  // the handshake, then one packet each way
  tunA.receiver!(read().slice(0, 1));
  for (let i = 0; i < 50 && b.snapshot().peers[0]?.lastHandshakeTime === null; i++)
    await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100));
  tunA.receiver!(read().slice(0, 1));
  if (tunB.written === 0) throw new Error('no packet reached B');

  const perRead = batch.reduce((s, x) => s + x.length, 0);
  const reads = Math.ceil((MB * 1e6) / perRead);
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const res: Record<string, number[]> = { split: [], send: [], receive: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // split alone
    await collect(run('split'));
    let t = cpu();
    if (run('split')) for (let i = 0; i < reads; i++) read();
    await collect(false);
    res.split!.push((cpu() - t) / ((reads * perRead) / 1e9));
    // split + the send path to a bind that drops
    bindA.mode = 'drop';
    await collect(run('send'));
    t = cpu();
    if (run('send')) for (let i = 0; i < reads; i++) tunA.receiver!(read());
    await collect(false);
    res.send!.push((cpu() - t) / ((reads * perRead) / 1e9));
    if (!run('receive') && ONLY !== 'capture') continue;
    // the receive path: datagrams captured from A (not timed), delivered 64 to a batch
    bindA.mode = 'capture';
    bindA.captured = [];
    const cap = Math.min(
      reads,
      Math.ceil((Number(process.env.AWG_BENCH_CAPTURE_MB ?? 200) * 1e6) / perRead),
    );
    for (let i = 0; i < cap; i++) tunA.receiver!(read());
    const dgrams = bindA.captured;
    bindA.captured = [];
    if (ONLY === 'capture') continue;
    const deliver = (from: number, to: number) => {
      for (let i = from; i < to; i += 64) {
        const end = Math.min(i + 64, to);
        for (let k = i; k < end; k++) bindB.receiver!(dgrams[k]!, bindA.self);
        bindB.batchEnd?.();
      }
    };
    // the first fifth warms the receive path up (in the send stage the send path was)
    const warm = Math.floor(dgrams.length / 5 / 64) * 64;
    deliver(0, warm);
    const before = tunB.written;
    await collect(true);
    t = cpu();
    deliver(warm, dgrams.length);
    await collect(false);
    const got = tunB.written - before;
    res.receive!.push((cpu() - t) / (got / 1e9));
    if (got < (cap * perRead * 0.99 * (dgrams.length - warm)) / dgrams.length)
      throw new Error(`B took ${got} of ${cap * perRead} bytes`);
    bindA.mode = 'pass';
  }
  console.log(
    `engine CPU per GB of IP packets (${MTU}-byte packets from 64 KiB super-packets, awg ${GEN}, ${process.version}, median of ${ROUNDS}):`,
  );
  for (const [k, v] of Object.entries(res))
    console.log(
      `  ${k.padEnd(8)} ${median(v).toFixed(3)} s/GB  (${v.map((x) => x.toFixed(3)).join(' ')})`,
    );
  await a.close();
  await b.close();
}

void main();
