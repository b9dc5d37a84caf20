/**
 * The TUN side of the data plane (wireguard-go `tun.Device`, push-shaped for Node).
 * Packets are raw IP packets (no PI header, no utun AF prefix: a platform driver strips it).
 *
 * Contract:
 * - `onReceive(cb)` installs the one receiver; the device calls it once at construction.
 *   The TUN invokes it with a batch of packets read from the kernel (order preserved).
 *   The packets are valid until the callback returns: the TUN reads the next batch into the
 *   same memory, so a receiver that keeps a packet (staged for a handshake) copies it.
 * - `write(packets)` queues packets towards the kernel; never throws for a single bad packet
 *   (drops it), may throw AwgError('driver') when the device is gone. The packets are views
 *   of the device's receive slab, reused once `write` returns: a TUN that keeps one copies it.
 * - `mtu()` is the current MTU of the link; the data plane pads to at most this size.
 * - `close()` stops delivery; idempotent.
 */
export interface TunDevice {
  readonly name: string;
  mtu(): number;
  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void;
  write(packets: Uint8Array[]): void;
  close(): Promise<void> | void;
  /**
   * Gives the pages of the read slab (and write buffer) back to the kernel while the tunnel is
   * idle (dataplane/buffers.ts): bytes released. Called between batches only.
   */
  releaseIdle?(): number;
}
