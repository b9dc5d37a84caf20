/**
 * Memory by address: the address of a buffer's backing store and a view of memory at an
 * address (shared between threads by the crypto pool, src/dataplane/crypto/pool.ts), and
 * pages given back to the kernel while a buffer is idle (`releasePages`). koffi 3 pointers are
 * BigInts.
 *
 * Contract: `addressOf` is only meaningful for a backing store that never moves — off the V8
 * heap: an ArrayBuffer larger than 64 bytes (smaller typed arrays can live on the heap and
 * move), a SharedArrayBuffer, or memory from `koffi.alloc`. `viewAt` does not own what it
 * views: the owner keeps the memory alive (and unchanged in size) while the view is used.
 */
import koffi from 'koffi';
import { rawLibcFunc } from './libc.js';

export function addressOf(buffer: ArrayBufferLike): bigint {
  return koffi.address(new Uint8Array(buffer)) as unknown as bigint;
}

export function viewAt(address: bigint, length: number): Uint8Array {
  return new Uint8Array(koffi.view(address as never, length) as ArrayBuffer);
}

const MADV_DONTNEED = 4;
const SC_PAGESIZE = 30;
let pageSize = 0;

/**
 * Gives the whole pages inside each view back to the kernel (`madvise(MADV_DONTNEED)`): they
 * stop counting in the process's RSS and read as zeros when next touched. For buffers whose
 * contents are dead between uses (receive blocks and slabs of an idle tunnel), never for live
 * data. A view must be off the V8 heap (addressOf's contract) and in private anonymous memory
 * (malloc, `koffi.alloc`, an ArrayBuffer's backing store). Returns the bytes released: nothing
 * for a view with no whole page inside or that the kernel refused, and 0 where madvise is not
 * available (not Linux glibc on x64/arm64). Measurements: bench/RESULTS.md, section "The daemon
 * on Node 24 under its bar".
 */
export function releasePages(...views: (Uint8Array | undefined)[]): number {
  const madvise = rawLibcFunc<(addr: bigint, len: number, advice: number) => number>(
    'int madvise(uintptr_t addr, size_t len, int advice)',
  );
  if (!madvise) return 0;
  if (!pageSize)
    pageSize =
      Number(rawLibcFunc<(name: number) => number>('long sysconf(int name)')?.(SC_PAGESIZE) ?? 0) ||
      4096;
  const page = BigInt(pageSize);
  let released = 0;
  for (const view of views) {
    if (!view?.byteLength) continue;
    const start = addressOf(view.buffer) + BigInt(view.byteOffset);
    const first = ((start + page - 1n) / page) * page;
    const end = ((start + BigInt(view.byteLength)) / page) * page;
    if (end <= first) continue;
    const len = Number(end - first);
    if (madvise(first, len, MADV_DONTNEED) === 0) released += len;
  }
  return released;
}
