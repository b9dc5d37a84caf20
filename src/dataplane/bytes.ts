/**
 * Little-endian integers in byte arrays: WireGuard's message fields and its AEAD nonce
 * (noise/messages.ts re-exports them; crypto/ uses them without depending on noise/).
 */
export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** u64le as a JS number; values ≥ 2^53 come back as Infinity (treated as exhausted). */
export function readU64(b: Uint8Array, off: number): number {
  const lo = readU32(b, off);
  const hi = readU32(b, off + 4);
  if (hi >= 0x20_0000) return Infinity;
  return hi * 0x1_0000_0000 + lo;
}

export function writeU64(b: Uint8Array, off: number, v: number): void {
  writeU32(b, off, v >>> 0);
  writeU32(b, off + 4, Math.floor(v / 0x1_0000_0000) >>> 0);
}
