/**
 * TAI64N timestamps (12 bytes: u64be 2^62+10+seconds ‖ u32be nanoseconds). Nanoseconds are
 * whitened to a multiple of 2^24 so the timestamp does not leak fine timing.
 */
export const TAI64N_SIZE = 12;
const BASE = 0x4000_0000_0000_000an;
const WHITENER_MASK = 0xff00_0000;

/** `ms` is Unix wall time in milliseconds; `extraNanos` adds sub-millisecond precision. */
export function tai64n(ms: number, extraNanos = 0): Uint8Array {
  const secs = Math.floor(ms / 1000);
  const nanos = ((ms - secs * 1000) * 1_000_000 + extraNanos) & WHITENER_MASK;
  const out = new Uint8Array(TAI64N_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BASE + BigInt(secs), false);
  v.setUint32(8, nanos >>> 0, false);
  return out;
}

export function tai64nFromParts(secs: number, nanos: number): Uint8Array {
  const out = new Uint8Array(TAI64N_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BASE + BigInt(secs), false);
  v.setUint32(8, (nanos & WHITENER_MASK) >>> 0, false);
  return out;
}

/** a > b, byte-wise. */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_SIZE; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return false;
}
