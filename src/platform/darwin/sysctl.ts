/** sysctl(8) output: `name: value` reads and `name: old -> new` writes. Pure. */

export interface SysctlEntry {
  key: string;
  value: string;
  /** present for `-w` output */
  previous?: string;
}

export function parseSysctl(text: string): SysctlEntry[] {
  const out: SysctlEntry[] = [];
  for (const l of text.split('\n')) {
    const m = /^([a-z0-9_.]+): (.*?)\s*$/i.exec(l);
    if (!m) continue;
    const w = /^(.*) -> (.*)$/.exec(m[2]!);
    out.push(w ? { key: m[1]!, value: w[2]!, previous: w[1]! } : { key: m[1]!, value: m[2]! });
  }
  return out;
}

/** `sysctl: unknown oid 'x'` */
export function parseSysctlError(
  text: string,
): { unknownOid?: string; message: string } | undefined {
  const l = text.split('\n').find((x) => x.startsWith('sysctl: '));
  if (!l) return undefined;
  const m = /unknown oid '([^']+)'/.exec(l);
  return m ? { unknownOid: m[1]!, message: l.slice(8) } : { message: l.slice(8) };
}
