/**
 * Human view of a plan: grouped by resource kind, `+ ~ - ±` glyphs, colour only on a TTY.
 * Secrets never reach here (the model carries fingerprints only). Pure.
 */
import type { AnyChange, Plan } from '../model/change.js';
import { formatRate } from '../config/rate.js';
import { RESOURCE_KINDS, type ShaperClass } from '../model/resources.js';
import {
  rulesetOf,
  setChanges,
  withoutSetComments,
  type SetChange,
} from '../model/firewall-sets.js';

/** the elements of a static set by digest, when this process knows them (for +N −M) */
export type ElementsLookup = (digest: string) => readonly string[] | undefined;

const GLYPH = { create: '+', update: '~', replace: '±', delete: '-', noop: ' ' } as const;
const COLOUR = {
  create: '\x1b[32m',
  update: '\x1b[33m',
  replace: '\x1b[35m',
  delete: '\x1b[31m',
  noop: '',
} as const;
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

function short(v: unknown): string {
  if (v === undefined) return '∅';
  if (typeof v === 'string' && v.includes('\n')) return `<${v.trimEnd().split('\n').length} lines>`;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

const MAX_TEXT_LINES = 12;

/** Multi-line values (the nft ruleset): the lines only one side has, `-` then `+`. */
function textDiff(before: string, after: string): string[] {
  const b = before
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '');
  const a = after
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '');
  const inA = new Set(a);
  const inB = new Set(b);
  const out = [
    ...b.filter((l) => !inA.has(l)).map((l) => `        - ${l}`),
    ...a.filter((l) => !inB.has(l)).map((l) => `        + ${l}`),
  ];
  return out.length > MAX_TEXT_LINES
    ? [...out.slice(0, MAX_TEXT_LINES), `        … ${out.length - MAX_TEXT_LINES} more lines`]
    : out;
}

/** a shaper's classes and damage, one per line (so a plan shows which class changed) */
function asLines(kind: string, field: string, v: unknown): unknown {
  if (kind !== 'shaper' || !Array.isArray(v)) return v;
  if (field === 'classes')
    return (
      (v as ShaperClass[])
        .map(
          (k) => `class ${k.n} ${k.name} ${formatRate(k.rate)} ports ${k.ports[0]}-${k.ports[1]}`,
        )
        .join('\n') + '\n'
    );
  if (field === 'damage') return (v as string[]).join('\n') + '\n';
  return v;
}

/**
 * an element count with thousands separators, as toLocaleString('en-US') writes it, without
 * loading ICU's number format (its first use costs 10–40 ms of a CLI's start)
 */
export const count = (n: number): string =>
  Number.isSafeInteger(n) && n >= 0
    ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
    : n.toLocaleString('en-US');

/** one line per destination set a firewall change creates, changes or removes */
export function setLine(s: SetChange): string {
  const glyph = s.action === 'create' ? '+' : s.action === 'delete' ? '-' : '~';
  const head = `${glyph} set ${s.name}${s.rule !== undefined ? ` (rule ${s.rule})` : ''}`;
  if (s.kind === 'learned')
    return `${head}: learned from DNS${s.action === 'delete' ? ' (its addresses go with it)' : ''}`;
  if (s.action === 'create') return `${head}: ${count(s.after ?? 0)} entries`;
  if (s.action === 'delete') return `${head}: ${count(s.before ?? 0)} entries`;
  const delta =
    s.added !== undefined && s.removed !== undefined
      ? ` (+${count(s.added)} −${count(s.removed)})`
      : s.before === s.after
        ? ' (other entries)'
        : '';
  return `${head}: ${count(s.before ?? 0)} → ${count(s.after ?? 0)} entries${delta}`;
}

/** a firewall change's sets, then its ruleset's other lines */
function firewallLines(c: AnyChange, elements: ElementsLookup | undefined): string[] {
  const b = rulesetOf(c.before);
  const a = rulesetOf(c.after);
  const sets = setChanges(b, a, elements).map((s) => `      ${setLine(s)}`);
  if (c.action !== 'update' && c.action !== 'replace') return sets;
  return [...sets, ...fieldLines(c)];
}

function fieldLines(c: AnyChange): string[] {
  if ((c.action !== 'update' && c.action !== 'replace') || !c.before || !c.after || !c.fields)
    return [];
  const b = c.before as unknown as Record<string, unknown>;
  const a = c.after as unknown as Record<string, unknown>;
  return c.fields.flatMap((f) => {
    if (c.kind === 'firewall' && f === 'ruleset') {
      // the sets' comments (count and digest) were told per set above
      const x = withoutSetComments(String(b[f] ?? ''));
      const y = withoutSetComments(String(a[f] ?? ''));
      const d = textDiff(x, y);
      return d.length ? [`      ${f}:`, ...d] : [];
    }
    const x = asLines(c.kind, f, b[f]) ?? (c.kind === 'shaper' && f === 'damage' ? '' : undefined);
    const y = asLines(c.kind, f, a[f]) ?? (c.kind === 'shaper' && f === 'damage' ? '' : undefined);
    if (typeof x === 'string' && typeof y === 'string' && (x.includes('\n') || y.includes('\n')))
      return [`      ${f}:`, ...textDiff(x, y)];
    return [`      ${f}: ${short(x)} → ${short(y)}`];
  });
}

export function renderPlan(
  p: Plan,
  opts: { colour: boolean; verbose?: boolean | undefined; elements?: ElementsLookup | undefined },
): string {
  const col = (code: string, s: string) => (opts.colour && code ? code + s + RESET : s);
  const changes = p.changes.filter((c) => c.action !== 'noop');
  const lines: string[] = [];
  for (const f of p.foreign) {
    lines.push(col('\x1b[33m', `! ${f.relation}: ${f.id}: ${f.description}`));
  }
  if (p.foreign.length) lines.push('');
  if (changes.length === 0) {
    lines.push('No changes. The system matches the configuration.');
  } else {
    for (const kind of RESOURCE_KINDS) {
      const group = changes.filter((c) => c.kind === kind);
      if (!group.length) continue;
      lines.push(col(opts.colour ? '\x1b[1m' : '', `${kind}:`));
      for (const c of group) {
        const drift = c.cause === 'drift' ? col(DIM, ' [drift]') : '';
        lines.push(
          col(COLOUR[c.action], `  ${GLYPH[c.action]} ${c.id}`) +
            col(DIM, `  (${c.reason})`) +
            drift,
        );
        lines.push(...(c.kind === 'firewall' ? firewallLines(c, opts.elements) : fieldLines(c)));
        if (opts.verbose && c.after && c.action === 'create')
          lines.push(col(DIM, `      ${short(c.after)}`));
      }
    }
    const n = (a: string) => changes.filter((c) => c.action === a).length;
    const drift = changes.filter((c) => c.cause === 'drift').length;
    lines.push('');
    lines.push(
      `Plan: ${n('create')} to create, ${n('update')} to update, ${n('replace')} to replace, ${n('delete')} to delete${drift ? ` (${drift} from drift)` : ''}.`,
    );
  }
  for (const w of p.warnings) lines.push(col('\x1b[33m', `warning: ${w}`));
  return lines.join('\n') + '\n';
}
