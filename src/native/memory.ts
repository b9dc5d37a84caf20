/**
 * Memory shared between threads by address (the crypto pool, src/dataplane/crypto/pool.ts):
 * the address of a buffer's backing store, and a view of memory at an address. koffi 3
 * pointers are BigInts.
 *
 * Contract: `addressOf` is only meaningful for a backing store that never moves — off the V8
 * heap: an ArrayBuffer larger than 64 bytes (smaller typed arrays can live on the heap and
 * move), a SharedArrayBuffer, or memory from `koffi.alloc`. `viewAt` does not own what it
 * views: the owner keeps the memory alive (and unchanged in size) while the view is used.
 */
import koffi from 'koffi';

export function addressOf(buffer: ArrayBufferLike): bigint {
  return koffi.address(new Uint8Array(buffer)) as unknown as bigint;
}

export function viewAt(address: bigint, length: number): Uint8Array {
  return new Uint8Array(koffi.view(address as never, length) as ArrayBuffer);
}
