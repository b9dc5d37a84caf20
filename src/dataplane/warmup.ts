/**
 * Handshake warm-up. A handshake runs a few hundred lines of JS (Noise, BLAKE2s, the AWG
 * codec, timers) that an engine executes once per peer every two minutes: never often enough
 * for V8 to compile it, so every handshake ran in the interpreter: in a fresh process the first
 * in-memory pairs take several times as long as they do from about the twentieth on
 * (`bench/handshake.bench.ts --curve` shows the curve).
 *
 * `warmUpHandshakes` runs that code in memory on throw-away keys: pairs of devices joined by
 * a two-ended in-memory wire (not the test doubles of conn/memory.fake.ts and tun/memory.fake.ts, which
 * stay out of the build), a handshake and a few packets each way, then closed. Nothing
 * touches the OS. Once per process, in the background after an engine starts (engine.ts);
 * AWG_WARMUP=0 turns it off (diagnosis).
 *
 * The pairs run with the engine's own AmneziaWG parameters: junk packets, I-packet tags, the
 * S1–S4 prefixes, H ranges, header protection, trailers and padding are code the first real
 * handshake would otherwise run cold (the first ping after a peer reset then fell further behind
 * amneziawg-go's for the AmneziaWG sets than for plain WireGuard). Measurements:
 * bench/RESULTS.md, section "First pings: the AmneziaWG warm-up". A
 * process whose engines differ (a daemon with WireGuard and AmneziaWG tunnels) warms each kind
 * once: plain WireGuard, and the first obfuscated parameter set it sees.
 */
import { type AwgParams, isDefaultAwg } from './awg/params.js';
import type { Bind, Endpoint } from './conn/bind.js';
import { generateKeyPair } from './crypto/keys.js';
import { Device, RX_SLAB, TX_SLAB } from './device/device.js';
import type { TunDevice } from './tun/tun.js';

class WarmTun implements TunDevice {
  readonly name = 'warm';
  private cb: ((packets: Uint8Array[]) => void) | null = null;
  written = 0;
  mtu(): number {
    return 1420;
  }
  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void {
    this.cb = cb;
  }
  write(packets: Uint8Array[]): void {
    this.written += packets.length;
  }
  close(): void {
    this.cb = null;
  }
  inject(p: Uint8Array): void {
    this.cb?.([p]);
  }
}

/** One end of a wire; datagrams reach the other end on a microtask. */
class WarmBind implements Bind {
  other: WarmBind | null = null;
  private cb: ((data: Uint8Array, from: Endpoint) => void) | null = null;
  constructor(readonly self: Endpoint) {}
  async open(): Promise<number> {
    return this.self.port;
  }
  onReceive(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void {
    this.cb = cb;
  }
  send(bufs: Uint8Array[]): void {
    const to = this.other;
    if (!to) return;
    for (const b of bufs) {
      const copy = Uint8Array.from(b); // the sender reuses its buffers (Bind contract)
      queueMicrotask(() => to.cb?.(copy, this.self));
    }
  }
  close(): void {
    this.cb = null;
  }
}

/** one run per kind: 'wg' (plain WireGuard) and 'awg' (the first obfuscated set) */
const started = new Map<'wg' | 'awg', Promise<number>>();

/** A minimal IPv4 packet a → b (ICMP-shaped payload). */
function packet(src: number, dst: number, n: number): Uint8Array {
  const p = new Uint8Array(84);
  p[0] = 0x45;
  p[3] = p.length;
  p[8] = 64;
  p[9] = 1;
  p.set([10, 99, 0, src], 12);
  p.set([10, 99, 0, dst], 16);
  p[20] = 8;
  p[83] = n;
  return p;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** one end's slabs, shared by the pairs (one pair runs at a time) */
const slabs = () => ({ tx: Buffer.allocUnsafeSlow(TX_SLAB), rx: Buffer.allocUnsafeSlow(RX_SLAB) });

async function pair(
  i: number,
  sa: { tx: Buffer; rx: Buffer },
  sb: { tx: Buffer; rx: Buffer },
  awg: AwgParams | undefined,
): Promise<boolean> {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const ta = new WarmTun();
  const tb = new WarmTun();
  const wa = new WarmBind({ address: '192.0.2.1', port: 1 });
  const wb = new WarmBind({ address: '192.0.2.2', port: 2 });
  wa.other = wb;
  wb.other = wa;
  // never the process's crypto pool (its queues' memory), and no slabs of their own: 30 pairs'
  // 384 KiB each, freed only when V8 collects them, left megabytes of glibc's heap resident in
  // an engine that had not carried a packet yet
  const quiet = { resolver: { resolve: async () => [] }, cryptoPool: null };
  const a = new Device({ tun: ta, bind: wa, ...quiet, slabs: sa });
  const b = new Device({ tun: tb, bind: wb, ...quiet, slabs: sb });
  try {
    const obf = awg ? { awg: { ...awg, i: [...awg.i] } } : {};
    await a.configure({
      privateKey: ka.privateKey,
      listenPort: 1,
      ...obf,
      peers: [{ publicKey: kb.publicKey, endpoint: '192.0.2.2:2', allowedIps: ['10.99.0.2/32'] }],
    });
    await b.configure({
      privateKey: kb.privateKey,
      listenPort: 2,
      ...obf,
      peers: [{ publicKey: ka.publicKey, allowedIps: ['10.99.0.1/32'] }],
    });
    await b.up();
    await a.up();
    // every other pair lets the devices prepare the initiation (and its preamble and datagram)
    // on the turn after up, as an engine's peer has it ready when its first packet comes after
    // a start or a reset: that path runs warm too, not only the one that builds it at once
    if (i % 2 === 0) await tick();
    for (let k = 0; k < 4; k++) {
      ta.inject(packet(1, 2, i + k));
      tb.inject(packet(2, 1, i + k));
      for (let w = 0; w < 5; w++) await tick();
    }
    return ta.written > 0 && tb.written > 0;
  } finally {
    await a.close();
    await b.close();
  }
}

/**
 * Runs `pairs` in-memory handshakes with the parameters `awg` (the engine's; plain WireGuard
 * when they obfuscate nothing), yielding to the event loop between them. Once per process and
 * kind; resolves to how many pairs got packets through both ways.
 */
export function warmUpHandshakes(pairs = 30, awg?: AwgParams | null): Promise<number> {
  const kind = awg && !isDefaultAwg(awg) ? 'awg' : 'wg';
  let run = started.get(kind);
  if (!run) {
    const params = kind === 'awg' ? awg! : undefined;
    run = (async () => {
      let ok = 0;
      const sa = slabs();
      const sb = slabs();
      for (let i = 0; i < pairs; i++) {
        if (await pair(i, sa, sb, params)) ok++;
        await new Promise((r) => setTimeout(r, 1)); // real traffic goes first
      }
      return ok;
    })().catch(() => 0);
    started.set(kind, run);
  }
  return run;
}
