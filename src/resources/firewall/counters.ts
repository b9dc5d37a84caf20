/**
 * Counters of our nft table by rule comment (`app/<rule>` egress, `app-in/<rule>` ingress,
 * `blocked/…`, `kill-switch`, `dns-leak`, …): packets and bytes summed over the rules sharing a
 * comment prefix up to the second `/` (`app/work/ipv6-blocked` counts for `app/work`). Read
 * from `nft -j list table` (the JSON form carries each rule's comment and counter as fields,
 * no text matching). Read-only; a listing that does not parse, or entries without a usable
 * counter, yield nothing rather than a guess.
 */
import type { Exec } from '../../util/exec.js';
import { isObject } from '../../util/shape.js';

export interface Counter {
  packets: number;
  bytes: number;
}

const count = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

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
    if (typeof comment !== 'string' || !comment || comment.length > 200 || !Array.isArray(expr))
      continue;
    // one counter statement per rule (render.ts writes exactly one)
    const counters = expr.flatMap((e) =>
      isObject(e) && isObject(e['counter']) ? [e['counter']] : [],
    );
    if (counters.length !== 1) continue;
    const { packets, bytes } = counters[0]!;
    if (!count(packets) || !count(bytes)) continue;
    const key = comment.split('/').slice(0, 2).join('/');
    const prev = out.get(key) ?? { packets: 0, bytes: 0 };
    out.set(key, { packets: prev.packets + packets, bytes: prev.bytes + bytes });
  }
  return out;
}

export const nftCountersRead = (table: string): [string, string[]] => [
  'nft',
  ['-j', 'list', 'table', 'inet', table],
];

/** empty when the table is absent or unreadable */
export async function readRuleCounters(
  exec: Pick<Exec, 'read'>,
  table: string,
): Promise<Map<string, Counter>> {
  const [cmd, args] = nftCountersRead(table);
  const r = await exec.read(cmd, args, { allowFail: true });
  return r.code === 0 ? parseCountersJson(r.stdout, table) : new Map();
}

const COUNTER = /(^| )counter(?: packets \d+ bytes \d+)?(?= |$)/;

/** the statement lines of a listing, joined as normaliseRuleset joins them, counters kept */
function listingLines(text: string): string[] {
  const out: string[] = [];
  // one statement's wrapped lines as parts (a set's elements: tens of thousands of lines),
  // joined once: never a growing string tested per line (quadratic)
  let parts: string[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.replace(/\s+# handle \d+\s*$/, '').trim();
    if (!l) continue;
    parts.push(l);
    if (l.endsWith(',')) continue;
    out.push(parts.join(' '));
    parts = [];
  }
  if (parts.length) out.push(parts.join(' '));
  return out;
}

/**
 * A table replace (`delete table` + definition, one transaction) would restart every counter
 * at 0. The new definition instead carries the values of the listing read just before it, for
 * each rule that is unchanged (same chain, same text; the n-th of identical rules takes the n-th
 * value): a re-apply that does not change a rule does not reset its counter, a changed or new
 * rule starts at 0, a removed rule's counter is gone with it. Packets counted between that read
 * and the replace are lost (the window of one `nft -f`). Pure.
 */
export function carryCounters(listing: string, ruleset: string): string {
  const values = new Map<string, string[]>();
  let chain = '';
  for (const l of listingLines(listing)) {
    const c = /^chain (\S+) \{$/.exec(l);
    if (c) chain = c[1]!;
    else if (l === '}') chain = '';
    if (!chain) continue;
    const m = /(?:^| )(counter packets \d+ bytes \d+)(?= |$)/.exec(l);
    if (!m) continue;
    const key = `${chain}\n${l.replace(COUNTER, '$1counter')}`;
    const q = values.get(key) ?? [];
    q.push(m[1]!);
    values.set(key, q);
  }
  chain = '';
  return ruleset
    .split('\n')
    .map((l) => {
      const c = /^chain (\S+) \{$/.exec(l);
      if (c) chain = c[1]!;
      else if (l === '}') chain = '';
      const v = chain ? values.get(`${chain}\n${l}`)?.shift() : undefined;
      return v ? l.replace(COUNTER, `$1${v}`) : l;
    })
    .join('\n');
}
