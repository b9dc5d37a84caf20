/**
 * Counters of our nft table by rule comment (`app/<rule>` egress, `app-in/<rule>` ingress,
 * `blocked/…`, `kill-switch`, `dns-leak`, …): packets and bytes summed over the rules sharing a
 * comment prefix up to the second `/` (`app/work/ipv6-blocked` counts for `app/work`). Read
 * from `nft -t -j list ruleset inet` (the JSON form carries each rule's comment and counter as
 * fields, no text matching; `-t` leaves set elements out: a list of 100,000 prefixes is not read
 * for a counter — nft 1.0.6 honours it for a ruleset listing, not for `list table`). Read-only; a listing that does not parse, or entries without a usable counter,
 * yield nothing rather than a guess.
 *
 * A destination rule's lines (`app/<rule>/@<set>`, one per set) are also kept apart, per rule
 * and set (parseSetCounters), with the set's entries: a static set's from its comment (the
 * count of `awg n=<count> sha256=…`), a learned set's (`flags timeout`, filled at run time)
 * from a listing of that set alone.
 */
import type { Exec } from '../../util/exec.js';
import { isObject } from '../../util/shape.js';
import { canonicalProtocols } from './normalise.js';

export interface Counter {
  packets: number;
  bytes: number;
}

const count = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** one set of a destination rule: the packets and bytes of its route_out line, its entries */
export interface SetCounter extends Counter {
  set: string;
  kind: 'static' | 'learned';
  /** static: the count of its comment; learned: filled in by readTableCounters (undefined: not read) */
  elements?: number;
}

export interface TableCounters {
  /** by comment key, as parseCountersJson */
  rules: Map<string, Counter>;
  /** rule name → its destination sets, in route_out order */
  sets: Map<string, SetCounter[]>;
}

function items(text: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  const list = isObject(doc) ? doc['nftables'] : undefined;
  return Array.isArray(list) ? list : [];
}

/** `nft -j list table inet <table>` → counters by comment key; rules of other tables are ignored */
export function parseCountersJson(text: string, table: string): Map<string, Counter> {
  return parseTableCounters(text, table).rules;
}

const SET_LINE = /^app\/([^/]+)\/@([^/]+)$/;
const STATIC_COMMENT = /^awg n=(\d+) sha256=([0-9a-f]+)$/;

/**
 * A static set changed in place holds another count than its kernel comment says: the count
 * the state directory's record gives for (set, the comment's digest), when it has one
 * (set-contents.ts contentCount).
 */
export type ContentCount = (set: string, digest: string) => number | undefined;

/** counters by comment key, and per destination rule the counters of its sets */
export function parseTableCounters(
  text: string,
  table: string,
  contents?: ContentCount,
): TableCounters {
  const out = new Map<string, Counter>();
  const sets = new Map<string, SetCounter[]>();
  const declared = new Map<string, Pick<SetCounter, 'kind' | 'elements'>>();
  const all = items(text);
  for (const item of all) {
    const s = isObject(item) ? item['set'] : undefined;
    if (!isObject(s) || s['table'] !== table || s['family'] !== 'inet') continue;
    if (typeof s['name'] !== 'string') continue;
    const c = typeof s['comment'] === 'string' ? STATIC_COMMENT.exec(s['comment']) : null;
    const flags = Array.isArray(s['flags']) ? s['flags'] : [];
    if (c)
      declared.set(s['name'], {
        kind: 'static',
        elements: contents?.(s['name'], c[2]!) ?? Number(c[1]),
      });
    else if (flags.includes('timeout')) declared.set(s['name'], { kind: 'learned' });
  }
  for (const item of all) {
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
    const m = SET_LINE.exec(comment);
    const d = m ? declared.get(m[2]!) : undefined;
    if (m && d) {
      const list = sets.get(m[1]!) ?? [];
      const same = list.find((x) => x.set === m[2]);
      if (same) {
        same.packets += packets;
        same.bytes += bytes;
      } else list.push({ set: m[2]!, ...d, packets, bytes });
      sets.set(m[1]!, list);
    }
  }
  return { rules: out, sets };
}

/** `nft -j list set inet <table> <set>` → its elements; undefined when it does not parse */
export function parseSetElementCount(text: string, table: string, set: string): number | undefined {
  for (const item of items(text)) {
    const s = isObject(item) ? item['set'] : undefined;
    if (!isObject(s) || s['table'] !== table || s['name'] !== set) continue;
    const elem = s['elem'];
    return Array.isArray(elem) ? elem.length : 0;
  }
  return undefined;
}

/** every inet table (parseTableCounters keeps ours), without set elements */
export const NFT_COUNTERS_READ: [string, string[]] = [
  'nft',
  ['-t', '-j', 'list', 'ruleset', 'inet'],
];

/** empty when the table is absent or unreadable */
export async function readRuleCounters(
  exec: Pick<Exec, 'read'>,
  table: string,
): Promise<Map<string, Counter>> {
  return (await readTableCounters(exec, table, { learned: false })).rules;
}

/**
 * The table's counters and its destination rules' sets; with `learned` (the default) each
 * learned set is listed on its own for its count (bounded: the DNS stub's entries expire).
 * Empty when the table is absent or unreadable.
 */
export async function readTableCounters(
  exec: Pick<Exec, 'read'>,
  table: string,
  opts: { learned?: boolean | undefined; contents?: ContentCount | undefined } = {},
): Promise<TableCounters> {
  const [cmd, args] = NFT_COUNTERS_READ;
  const r = await exec.read(cmd, args, { allowFail: true });
  if (r.code !== 0) return { rules: new Map(), sets: new Map() };
  const t = parseTableCounters(r.stdout, table, opts.contents);
  if (opts.learned === false) return t;
  for (const list of t.sets.values())
    for (const s of list) {
      if (s.kind !== 'learned') continue;
      const l = await exec.read('nft', ['-j', 'list', 'set', 'inet', table, s.set], {
        allowFail: true,
      });
      const n = l.code === 0 ? parseSetElementCount(l.stdout, table, s.set) : undefined;
      if (n !== undefined) s.elements = n;
    }
  return t;
}

const COUNTER = /(^| )counter(?: packets \d+ bytes \d+)?(?= |$)/;

/**
 * the statement lines of a listing, joined as normaliseRuleset joins them (protocol values in
 * its canonical form, so a rule listed as `meta l4proto { 6, 17 }` keeps its counter), counters kept
 */
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
    out.push(canonicalProtocols(parts.join(' ')));
    parts = [];
  }
  if (parts.length) out.push(canonicalProtocols(parts.join(' ')));
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
