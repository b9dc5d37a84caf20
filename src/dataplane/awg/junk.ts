/**
 * Jc junk datagrams sent before every initiation (amneziawg-go `JunkPackets`): each is
 * jmin + intn(jmax − jmin) random bytes, i.e. size in [jmin, jmax); jmax == jmin gives jmin.
 */
import type { RandomSource } from './random.js';

export function junkPackets(
  jc: number,
  jmin: number,
  jmax: number,
  rng: RandomSource,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < jc; i++) {
    const size = jmax > jmin ? jmin + rng.intn(jmax - jmin) : jmin;
    out.push(rng.bytes(size));
  }
  return out;
}
