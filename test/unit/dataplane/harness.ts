/** Two devices over the in-memory network and TUNs, with a simulated clock. */
import { Device, type DeviceOptions } from '../../../src/dataplane/device/device.js';
import { SimClock } from '../../../src/dataplane/clock.fake.js';
import { MemoryNetwork, type MemoryBind } from '../../../src/dataplane/conn/memory.fake.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { seededRandom } from '../../../src/dataplane/awg/random.fake.js';
import { generateKeyPair } from '../../../src/dataplane/crypto/keys.js';
import type { AwgParams } from '../../../src/dataplane/awg/params.js';
import type { UintRange } from '../../../src/dataplane/awg/range.js';

export function ipv4(
  src: string,
  dst: string,
  payload: Uint8Array | string = 'ping',
  proto = 1,
): Uint8Array {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = proto;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p.set(body, 20);
  return p;
}

export function ipv6(src: Uint8Array, dst: Uint8Array, payload = 'ping6'): Uint8Array {
  const body = Buffer.from(payload);
  const p = new Uint8Array(40 + body.length);
  p[0] = 0x60;
  p[4] = body.length >> 8;
  p[5] = body.length & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(body, 40);
  return p;
}

export interface Side {
  dev: Device;
  tun: MemoryTun;
  bind: MemoryBind;
  keys: { privateKey: Uint8Array; publicKey: Uint8Array };
  outer: string;
}

export interface PairOptions {
  awgA?: Partial<AwgParams> | undefined;
  awgB?: Partial<AwgParams>;
  /** A knows B's endpoint; B learns A's from the handshake */
  persistentKeepaliveA?: number | UintRange;
  psk?: Uint8Array;
  device?: Partial<DeviceOptions>;
  deviceA?: Partial<DeviceOptions>;
  deviceB?: Partial<DeviceOptions>;
  /** what A's / B's device is given instead of its memory bind (a wrapper around it) */
  wrapBindA?: (b: MemoryBind) => DeviceOptions['bind'];
  wrapBindB?: (b: MemoryBind) => DeviceOptions['bind'];
  seed?: number;
}

export async function makePair(o: PairOptions = {}) {
  const clock = new SimClock();
  const net = new MemoryNetwork(clock);
  const mk = (
    outer: string,
    name: string,
    seed: number,
    extra?: Partial<DeviceOptions>,
    wrap?: PairOptions['wrapBindB'],
  ): Side => {
    const tun = new MemoryTun(name);
    const bind = net.bind(outer);
    const dev = new Device({
      tun,
      bind: wrap ? wrap(bind) : bind,
      clock,
      random: seededRandom(seed),
      resolver: { resolve: async () => [] },
      ...o.device,
      ...extra,
    });
    return { dev, tun, bind, keys: generateKeyPair(), outer };
  };
  const a = mk('10.0.0.1', 'tunA', (o.seed ?? 1) * 2, o.deviceA, o.wrapBindA);
  const b = mk('10.0.0.2', 'tunB', (o.seed ?? 1) * 2 + 1, o.deviceB, o.wrapBindB);
  await a.dev.configure({
    privateKey: a.keys.privateKey,
    listenPort: 51820,
    awg: o.awgA,
    peers: [
      {
        publicKey: b.keys.publicKey,
        endpoint: '10.0.0.2:51821',
        allowedIps: ['192.168.0.2/32', 'fd00::2/128'],
        presharedKey: o.psk,
        persistentKeepalive: o.persistentKeepaliveA,
      },
    ],
  });
  await b.dev.configure({
    privateKey: b.keys.privateKey,
    listenPort: 51821,
    awg: o.awgB ?? o.awgA,
    peers: [
      {
        publicKey: a.keys.publicKey,
        allowedIps: ['192.168.0.1/32', 'fd00::1/128'],
        presharedKey: o.psk,
      },
    ],
  });
  await b.dev.up();
  await a.dev.up();
  /** advance simulated time, delivering the network after every timer */
  const advance = (ms: number, step = 100) => clock.step(ms, step, () => net.flush());
  return { clock, net, a, b, advance };
}

export const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * A pair whose B receives as the native bind does: every datagram of a network flush in one
 * batch, then the batch end; `deliver()` flushes until the network is quiet.
 */
export async function makeBatchedPair(o: Omit<PairOptions, 'wrapBindB'> = {}) {
  let batchEnd: (() => void) | null = null;
  let pending: Array<() => void> = [];
  const pair = await makePair({
    ...o,
    wrapBindB: (inner) => ({
      open: (port) => inner.open(port),
      close: () => inner.close(),
      send: (bufs, to) => inner.send(bufs, to),
      onReceive: (cb) => inner.onReceive(cb && ((d, from) => pending.push(() => cb(d, from)))),
      onBatchEnd: (cb) => (batchEnd = cb),
    }),
  });
  const deliver = () => {
    for (let i = 0; i < 50 && (pair.net.flush(), pending.length); i++) {
      const run = pending;
      pending = [];
      for (const f of run) f();
      batchEnd?.();
    }
  };
  return { ...pair, deliver };
}
