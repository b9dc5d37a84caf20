/**
 * Views of the data plane's long-lived slabs (the TUN read slab, the send and receive slabs),
 * made on the slab's ArrayBuffer, which is read once per slab: `Buffer#subarray` reads
 * `.buffer` on every call (a call into V8's runtime, `JSTypedArray::GetBuffer` in the engine's
 * profile) and constructs through Buffer's own class, where `new Uint8Array(ab, offset, length)`
 * is made inline by the optimizing compiler (≈ 22 ns against ≈ 49 ns a view on Node 20). The
 * views are plain Uint8Arrays. Measurements: bench/RESULTS.md, "CPU per byte".
 */
export class SlabViews {
  private slab: Uint8Array | null = null;
  private ab: ArrayBufferLike = new ArrayBuffer(0);
  private base = 0;

  /** `slab[start, end)` as a view (0 ≤ start ≤ end ≤ slab.length, as subarray's clamped ones) */
  of(slab: Uint8Array, start: number, end: number): Uint8Array {
    if (slab !== this.slab) {
      this.slab = slab;
      this.ab = slab.buffer;
      this.base = slab.byteOffset;
    }
    return new Uint8Array(this.ab, this.base + start, end - start);
  }
}
