/**
 * In-memory UDP network for tests. Datagrams queue and are delivered in a microtask (or
 * synchronously by `flush()`); faults are injected on demand: drop by predicate, fixed
 * delay on the network's clock, hold-and-release in any order (reordering).
 */
import { AwgError } from '../../errors.js';
import type { Clock } from '../clock.js';
import { type Bind, type Endpoint, formatEndpoint } from './bind.js';

export interface Datagram {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

export class MemoryNetwork {
  /** every datagram handed to the network, in send order (before faults) */
  readonly sent: Datagram[] = [];
  readonly dropped: Datagram[] = [];
  /** return true to drop */
  dropIf: ((d: Datagram) => boolean) | null = null;
  /** delay in ms on `clock` (requires a clock) */
  delayMs = 0;
  /** when true, datagrams accumulate in `held` until `release()` */
  hold = false;
  held: Datagram[] = [];

  private readonly binds = new Map<string, MemoryBind>();
  private queue: Datagram[] = [];
  private scheduled = false;
  private nextPort = 40_000;

  constructor(private readonly clock?: Clock) {}

  bind(address: string): MemoryBind {
    return new MemoryBind(this, address);
  }

  /** @internal */ register(b: MemoryBind, address: string, port: number): number {
    if (port === 0) {
      do port = this.nextPort++;
      while (this.binds.has(formatEndpoint({ address, port })));
    }
    const key = formatEndpoint({ address, port });
    const owner = this.binds.get(key);
    if (owner && owner !== b) throw new AwgError('driver', `address in use: ${key}`);
    this.binds.set(key, b);
    return port;
  }

  /** @internal */ unregister(b: MemoryBind, ep: Endpoint): void {
    const key = formatEndpoint(ep);
    if (this.binds.get(key) === b) this.binds.delete(key);
  }

  /** @internal */ transmit(d: Datagram): void {
    this.sent.push(d);
    if (this.dropIf?.(d)) {
      this.dropped.push(d);
      return;
    }
    if (this.hold) {
      this.held.push(d);
      return;
    }
    if (this.delayMs > 0 && this.clock) {
      this.clock.setTimer(() => this.enqueue(d), this.delayMs);
      return;
    }
    this.enqueue(d);
  }

  private enqueue(d: Datagram): void {
    this.queue.push(d);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Delivers held datagrams in the given order of indices (default: as held). */
  release(order?: number[]): void {
    const h = this.held;
    this.held = [];
    for (const i of order ?? h.map((_, k) => k)) if (h[i]) this.enqueue(h[i]);
  }

  /** Delivers everything queued, including datagrams sent in response, synchronously. */
  flush(maxRounds = 100_000): void {
    this.scheduled = false;
    let n = 0;
    while (this.queue.length) {
      if (++n > maxRounds) throw new Error('memory network: delivery did not settle');
      const d = this.queue.shift()!;
      this.binds.get(formatEndpoint(d.to))?.deliver(d);
    }
  }
}

export class MemoryBind implements Bind {
  private receiver: ((data: Uint8Array, from: Endpoint) => void) | null = null;
  private local: Endpoint | null = null;
  mark = 0;

  constructor(
    private readonly net: MemoryNetwork,
    private address: string,
  ) {}

  async open(port: number): Promise<number> {
    this.close();
    const p = this.net.register(this, this.address, port);
    this.local = { address: this.address, port: p };
    return p;
  }

  get localEndpoint(): Endpoint | null {
    return this.local;
  }

  /** Simulates a NAT rebinding / roaming client: same socket, new source address. */
  moveTo(address: string, port?: number): void {
    const p = port ?? this.local?.port ?? 0;
    if (this.local) this.net.unregister(this, this.local);
    this.address = address;
    this.local = { address, port: this.net.register(this, address, p) };
  }

  onReceive(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void {
    this.receiver = cb;
  }

  send(bufs: Uint8Array[], to: Endpoint): void {
    if (!this.local) return;
    for (const b of bufs)
      this.net.transmit({
        from: this.local,
        to: { address: to.address, port: to.port },
        data: Uint8Array.from(b),
      });
  }

  /** @internal */ deliver(d: Datagram): void {
    this.receiver?.(Uint8Array.from(d.data), d.from);
  }

  setMark(mark: number): void {
    this.mark = mark;
  }

  close(): void {
    if (this.local) this.net.unregister(this, this.local);
    this.local = null;
  }
}
