/** Pure helpers of the leak tests' classifier (unit-tested in test/unit/wire-classify.test.ts). */

/** the largest UDP payload one frame carries on the 1500-byte underlay (IPv4) */
const MAX_DATAGRAM = 1500 - 28;

/**
 * One transport message (type 4, 32 bytes or more, a multiple of 16, fits one frame), or a UDP
 * GSO train of them as the capture sees it before the kernel segments it (`AWG_UDP_GSO=1`):
 * equal segments of some size s (the last may be shorter), each a transport message to the
 * same receiver index with the next counter. A frame that splits no way is not WireGuard.
 * (The capture keeps whole frames, `-s 0`: a truncated one could not be checked.)
 */
export function isTransportTrain(b: Buffer): boolean {
  const ok = (o: number, n: number) => n >= 32 && n % 16 === 0 && b.readUInt32LE(o) === 4;
  if (!ok(0, Math.min(b.length, MAX_DATAGRAM))) return false;
  if (b.length <= MAX_DATAGRAM) return b.length % 16 === 0;
  const receiver = b.readUInt32LE(4);
  const counter = b.readBigUInt64LE(8);
  for (let s = 32; s <= MAX_DATAGRAM; s += 16) {
    let good = true;
    for (let k = 1, o = s; o < b.length && good; k++, o += s) {
      good =
        ok(o, Math.min(s, b.length - o)) &&
        b.readUInt32LE(o + 4) === receiver &&
        b.readBigUInt64LE(o + 8) === counter + BigInt(k);
    }
    if (good) return true;
  }
  return false;
}
