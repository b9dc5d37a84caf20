/**
 * AmneziaWG parameter sets, one per protocol generation, shared by the benches that run our
 * engine against upstream amneziawg-go (interop-matrix.ts, dataplane.bench.ts): by their
 * YAML names (awg's config), and as UAPI lines (amneziawg-go's socket).
 */
import { randomBytes } from 'node:crypto';

export type ParamValue = number | string | boolean;
export type Params = Record<string, ParamValue>;

const hpk = randomBytes(32).toString('base64');
/** AmneziaWG 1.0: junk, S1/S2, single H values */
export const AWG_1_0: Params = {
  jc: 4,
  jmin: 40,
  jmax: 70,
  s1: 15,
  s2: 18,
  h1: 1020325451,
  h2: 3288052141,
  h3: 1766607858,
  h4: 2528465083,
};
/** AmneziaWG 2.0: + S3/S4 (S4 = 23 on every transport packet), H ranges, an I1 packet */
export const AWG_2_0: Params = {
  ...AWG_1_0,
  s3: 20,
  s4: 23,
  h1: '471800590-471800690',
  h2: '1246894907-1246895000',
  h3: '923637689-923637690',
  h4: '1769581055-1869581055',
  i1: '<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>',
};
/** AmneziaWG 3.1: + header protection, random trailers, content padding */
export const AWG_3_1: Params = {
  ...AWG_2_0,
  headerProtectionKey: hpk,
  randomTrailers: true,
  contentPaddingAddition: '8-32',
};

/** a base64 key in hex (UAPI) */
export const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

/** The same parameters as UAPI lines (keys in snake case, the header key in hex). */
export function uapiParams(p: Params): string {
  return Object.entries(p)
    .map(([k, v]) => {
      const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      return `${key}=${k === 'headerProtectionKey' ? hex(v as string) : String(v)}\n`;
    })
    .join('');
}
