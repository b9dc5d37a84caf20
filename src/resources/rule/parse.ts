/**
 * `ip -j -N [-6] rule show` → RuleSpec. Pure.
 *
 * Ownership: a rule is ours when its priority is in the claimed band and it carries our
 * protocol (iproute2 6.1 prints `"protocol"`). In the band, anything else is a conflict: a rule
 * without our protocol, or one of ours with selectors awg never sets (src, oif, uidrange, …;
 * RuleSpec cannot express them, so treating it as ours would hide a difference). Rules in
 * front of the band that steer by fwmark or into a non-standard table are competitors.
 *
 * Normalisation: a fwmask of 0xffffffff is the kernel default and is dropped, so `fwmark X`
 * and `fwmark X/0xffffffff` compare equal.
 */
import type { RuleSpec } from '../../model/resources.js';
import { numberOrName } from '../route/parse.js';

export interface RuleBand {
  protocol: number;
  rulePriority: number;
  bandSize: number;
}

export interface ForeignRule {
  family: 4 | 6;
  priority: number;
  /** the raw JSON row, for the description */
  raw: Record<string, unknown>;
}

export interface ParsedRules {
  owned: RuleSpec[];
  conflicts: ForeignRule[];
  competitors: ForeignRule[];
}

const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253, unspec: 0 };
const STANDARD_TABLES = new Set([253, 254, 255]);
const ACTIONS: Record<string, 'unreachable' | 'blackhole'> = {
  '7': 'unreachable',
  unreachable: 'unreachable',
  '6': 'blackhole',
  blackhole: 'blackhole',
};
/** keys whose presence we understand; any other key is a selector or action we never set */
const KNOWN = new Set([
  'priority',
  'src',
  'fwmark',
  'fwmask',
  'iif',
  'table',
  'action',
  'suppress_prefixlen',
  'not',
  'protocol',
  'flags',
]);

function hex(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  return v.startsWith('0x') ? parseInt(v, 16) : Number(v);
}

/** the spec of a row, or a reason why RuleSpec cannot represent it */
function toSpec(row: Record<string, unknown>, family: 4 | 6): RuleSpec | string {
  const extra = Object.keys(row).filter((k) => !KNOWN.has(k));
  if (row.src !== undefined && row.src !== 'all') extra.push('src');
  if (extra.length) return `selectors awg does not set: ${extra.join(', ')}`;
  const spec: RuleSpec = {
    family,
    priority: Number(row.priority),
    action: 'lookup',
    protocol: numberOrName(
      row.protocol as string | undefined,
      { kernel: 2, boot: 3, static: 4 },
      0,
    ),
  };
  const mark = hex(row.fwmark);
  if (mark !== undefined) {
    spec.fwmark = mark;
    const mask = hex(row.fwmask);
    if (mask !== undefined && mask !== 0xffffffff) spec.fwmask = mask;
  }
  if (typeof row.iif === 'string') spec.iif = row.iif;
  if (row.action !== undefined) {
    const a = ACTIONS[String(row.action)];
    if (!a) return `action ${String(row.action)}`;
    spec.action = a;
  } else if (row.table !== undefined)
    spec.table = numberOrName(String(row.table), TABLE_NAMES, NaN);
  else return 'no table and no action';
  if (typeof row.suppress_prefixlen === 'number')
    spec.suppressPrefixLength = row.suppress_prefixlen;
  if ('not' in row) spec.invert = true;
  return spec;
}

export function parseRuleJson(text: string, family: 4 | 6, band: RuleBand): ParsedRules {
  const t = text.trim();
  return parseRuleRows((t ? JSON.parse(t) : []) as Record<string, unknown>[], family, band);
}

/** `parseRuleJson` of the listing's rows (the netlink reader's, route/rule-netlink.ts, or the JSON's) */
export function parseRuleRows(
  rows: readonly Record<string, unknown>[],
  family: 4 | 6,
  band: RuleBand,
): ParsedRules {
  const out: ParsedRules = { owned: [], conflicts: [], competitors: [] };
  const end = band.rulePriority + band.bandSize;
  for (const row of rows) {
    const priority = Number(row.priority ?? 0);
    const protocol = numberOrName(
      row.protocol as string | undefined,
      { kernel: 2, boot: 3, static: 4 },
      0,
    );
    if (priority >= band.rulePriority && priority < end) {
      const spec = toSpec(row, family);
      if (protocol === band.protocol && typeof spec !== 'string') out.owned.push(spec);
      else out.conflicts.push({ family, priority, raw: row });
      continue;
    }
    if (priority < band.rulePriority && protocol !== band.protocol) {
      const table =
        row.table === undefined ? undefined : numberOrName(String(row.table), TABLE_NAMES, NaN);
      if (row.fwmark !== undefined || (table !== undefined && !STANDARD_TABLES.has(table)))
        out.competitors.push({ family, priority, raw: row });
    }
  }
  return out;
}

export function describeRuleRow(r: ForeignRule): string {
  const parts = Object.entries(r.raw)
    .filter(([k]) => k !== 'priority' && !(k === 'src' && r.raw.src === 'all'))
    .map(([k, v]) => (v === null ? k : `${k} ${String(v)}`));
  return `ip -${r.family} rule ${r.priority}: ${parts.join(' ')}`;
}

/**
 * systemd-networkd deletes rules it did not create unless `ManageForeignRoutingPolicyRules=no`
 * (default yes). `texts` are networkd.conf followed by its drop-ins in order; the last wins.
 */
export function networkdManagesForeignRules(texts: string[]): boolean {
  let v = true;
  for (const text of texts) {
    let section = '';
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith(';')) continue;
      const sec = /^\[(.+)\]$/.exec(line);
      if (sec) {
        section = sec[1]!;
        continue;
      }
      const kv = /^ManageForeignRoutingPolicyRules\s*=\s*(\S*)/.exec(line);
      if (section === 'Network' && kv) v = !/^(no|false|0|off)$/i.test(kv[1]!);
    }
  }
  return v;
}
