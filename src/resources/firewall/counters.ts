/**
 * Counters of our nft table by rule comment (`app/<rule>` egress, `app-in/<rule>` ingress,
 * `blocked/…`, `kill-switch`, `dns-leak`, …): packets and bytes summed over the rules sharing a
 * comment prefix up to the second `/` (`app/work/ipv6-blocked` counts for `app/work`). Read
 * from `nft -j list table` (the JSON form carries each rule's comment and counter as fields,
 * no text matching). Read-only; a listing that does not parse, or entries without a usable
 * counter, yield nothing rather than a guess.
 */
import type { Exec } from '../../util/exec.js';

export interface Counter {
  packets: number;
  bytes: number;
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `nft -j list table inet <table>` → counters by comment key; rules of other tables are ignored */
export function parseCountersJson(text: string, table: string): Map<string, Counter> {
  const out = new Map<string, Counter>();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return out;
  }
  const items = isObject(doc) ? doc['nftables'] : undefined;
  if (!Array.isArray(items)) return out;
  for (const item of items) {
    const rule = isObject(item) ? item['rule'] : undefined;
    if (!isObject(rule) || rule['table'] !== table || rule['family'] !== 'inet') continue;
    const comment = rule['comment'];
    const expr = rule['expr'];
    if (typeof comment !== 'string' || !comment || comment.length > 200 || !Array.isArray(expr)) continue;
    // one counter statement per rule (render.ts writes exactly one)
    const counters = expr.flatMap((e) => (isObject(e) && isObject(e['counter']) ? [e['counter']] : []));
    if (counters.length !== 1) continue;
    const { packets, bytes } = counters[0]!;
    if (!count(packets) || !count(bytes)) continue;
    const key = comment.split('/').slice(0, 2).join('/');
    const prev = out.get(key) ?? { packets: 0, bytes: 0 };
    out.set(key, { packets: prev.packets + packets, bytes: prev.bytes + bytes });
  }
  return out;
}

export const nftCountersRead = (table: string): [string, string[]] => ['nft', ['-j', 'list', 'table', 'inet', table]];

/** empty when the table is absent or unreadable */
export async function readRuleCounters(exec: Pick<Exec, 'read'>, table: string): Promise<Map<string, Counter>> {
  const [cmd, args] = nftCountersRead(table);
  const r = await exec.read(cmd, args, { allowFail: true });
  return r.code === 0 ? parseCountersJson(r.stdout, table) : new Map();
}
