/**
 * The data plane reuses its packet memory (the TUN's read slab, the send and receive slabs,
 * the native bind's receive block) instead of allocating per packet; AWG_BUFFER_REUSE=0
 * switches back to a buffer per packet everywhere, for diagnosis.
 *
 * Reused memory stays resident once traffic has written it: the native bind's receive block
 * alone is 4 MiB per tunnel (64 slots of 64 KiB for UDP GRO). A device that saw no packet for
 * a whole IDLE_RELEASE_MS gives the pages of its buffers back to the kernel (the bind's and
 * the TUN's `releaseIdle`, native/rawmem.ts `releasePages`): their contents are dead between
 * batches, and the next packet faults fresh zeroed pages in. AWG_IDLE_RELEASE=0 turns it off
 * (diagnosis).
 */
export function reuseBuffers(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AWG_BUFFER_REUSE !== '0';
}

/**
 * A device's buffers are released after this long without a packet (and at most this long
 * later): a tunnel carrying anything, keepalives every 25 s included, keeps a few pages only.
 */
export const IDLE_RELEASE_MS = 5_000;

/** The idle check's period in ms (DeviceOptions.idleReleaseMs), 0 when AWG_IDLE_RELEASE=0. */
export function idleReleaseMs(env: NodeJS.ProcessEnv = process.env): number {
  return env.AWG_IDLE_RELEASE === '0' ? 0 : IDLE_RELEASE_MS;
}
