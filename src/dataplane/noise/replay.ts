/**
 * Sliding-window replay filter (RFC 6479, as wireguard-go `replay/replay.go`): a ring of
 * 64-bit blocks; window = (ringBlocks − 1) × 64 counters behind the highest seen.
 * wireguard-go and the Linux module use 128 blocks (8128); RFC 6479's example 2048 bits
 * is 32 blocks. Blocks are kept as two u32 halves to stay off bigint.
 */
const BLOCK_BITS = 64;

export class ReplayFilter {
  private last = 0;
  private readonly ring: Uint32Array;
  readonly windowSize: number;

  constructor(private readonly ringBlocks = 128) {
    this.ring = new Uint32Array(ringBlocks * 2);
    this.windowSize = (ringBlocks - 1) * BLOCK_BITS;
  }

  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /**
   * True if `counter` is fresh (and marks it seen). Counters ≥ limit are always rejected.
   * Call only after the packet authenticated.
   */
  validate(counter: number, limit: number): boolean {
    if (!(counter < limit)) return false;
    // counters go past 2^31: remainders by subtraction, as `%` of a double is a call to fmod
    const rb = this.ringBlocks;
    const indexBlock = Math.floor(counter / BLOCK_BITS);
    const lastBlock = Math.floor(this.last / BLOCK_BITS);
    if (counter > this.last) {
      const diff = Math.min(indexBlock - lastBlock, rb);
      for (let i = 1; i <= diff; i++) {
        const k = lastBlock + i;
        const b = (k - Math.floor(k / rb) * rb) * 2;
        this.ring[b] = 0;
        this.ring[b + 1] = 0;
      }
      this.last = counter;
    } else if (this.last - counter > this.windowSize) {
      return false;
    }
    const b = (indexBlock - Math.floor(indexBlock / rb) * rb) * 2;
    const bit = counter - indexBlock * BLOCK_BITS;
    const word = b + (bit >= 32 ? 1 : 0);
    const mask = (1 << (bit & 31)) >>> 0;
    const old = this.ring[word]!;
    this.ring[word] = old | mask;
    return (old & mask) === 0;
  }
}
