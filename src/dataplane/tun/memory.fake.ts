/**
 * In-memory TUN for tests: `inject` plays the kernel sending packets into the tunnel,
 * `written` / `onWrite` observe what the device delivers to the kernel.
 */
import { DEFAULT_MTU } from '../constants.js';
import type { TunDevice } from './tun.js';

export class MemoryTun implements TunDevice {
  readonly written: Uint8Array[] = [];
  onWrite: ((p: Uint8Array) => void) | null = null;
  private receiver: ((packets: Uint8Array[]) => void) | null = null;
  private closed = false;

  constructor(
    readonly name = 'mem0',
    private mtuValue = DEFAULT_MTU,
  ) {}

  mtu(): number {
    return this.mtuValue;
  }
  setMtu(mtu: number): void {
    this.mtuValue = mtu;
  }
  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void {
    this.receiver = cb;
  }
  write(packets: Uint8Array[]): void {
    if (this.closed) return;
    for (const p of packets) {
      // the device reuses its receive slab after write() returns (TunDevice contract)
      this.written.push(Uint8Array.from(p));
      this.onWrite?.(p);
    }
  }
  /** Packets the host routes into the tunnel. */
  inject(...packets: Uint8Array[]): void {
    if (!this.closed) this.receiver?.(packets);
  }
  close(): void {
    this.closed = true;
    this.receiver = null;
  }
  get isClosed(): boolean {
    return this.closed;
  }
}

/** Two TUNs for a two-device test. */
export function memoryTunPair(mtu = DEFAULT_MTU): [MemoryTun, MemoryTun] {
  return [new MemoryTun('mem0', mtu), new MemoryTun('mem1', mtu)];
}
