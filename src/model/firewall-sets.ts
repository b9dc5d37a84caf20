/**
 * The destination sets a firewall ruleset (FirewallSpec.ruleset, normalised nft text) declares,
 * read back from the text: what `awg diff` and the plan document say of them. A static set's
 * elements are not in the text; its comment carries their count and digest
 * (`awg n=<count> sha256=<digest>`, written by resources/firewall/render.ts). A learned set
 * (`flags timeout`) is filled at run time: the text knows no count. A set belongs to the rule
 * whose route_out line names it (comment `app/<rule>/@<set>`). Pure.
 */
import { deltaCounts, elementDelta } from './set-delta.js';

export { canonicalElement } from './set-delta.js';

export function staticSetComment(count: number, digest: string): string {
  return `awg n=${count} sha256=${digest}`;
}

/** a static set's comment line in a normalised ruleset */
export const STATIC_SET_COMMENT_RE = /^comment "awg n=(\d+) sha256=([0-9a-f]+)"$/;

export interface DeclaredSet {
  name: string;
  kind: 'static' | 'learned';
  /** the rule whose route_out line matches on the set (absent: no line names it) */
  rule?: string;
  /** static: elements */
  count?: number;
  /** static: digest of the elements */
  digest?: string;
}

const RULE_OF_SET = /comment "app\/([^"/]+)\/@([^"/]+)"$/;

/** the static and learned sets of a normalised ruleset, in declaration order */
export function declaredSets(ruleset: string): DeclaredSet[] {
  const out: DeclaredSet[] = [];
  const rules = new Map<string, string>();
  let set: (DeclaredSet & { other?: boolean }) | undefined;
  let addr = false;
  for (const raw of ruleset.split('\n')) {
    const l = raw.trim();
    const s = /^set (\S+) \{$/.exec(l);
    if (s) {
      set = { name: s[1]!, kind: 'learned', other: true };
      addr = false;
      continue;
    }
    if (set) {
      if (l === '}') {
        const { other, ...declared } = set;
        if (!other) out.push(declared);
        set = undefined;
        continue;
      }
      // ours: a static set (its comment) or a learned one (an address set with timeouts)
      const c = STATIC_SET_COMMENT_RE.exec(l);
      if (c)
        Object.assign(set, { kind: 'static', count: Number(c[1]), digest: c[2]!, other: false });
      else if (/^flags (.*, )?timeout(,|$)/.test(l) && addr) set.other = false;
      if (/^type /.test(l)) addr = /^type ipv[46]_addr$/.test(l);
      continue;
    }
    const r = RULE_OF_SET.exec(l);
    if (r) rules.set(r[2]!, r[1]!);
  }
  return out.map((s) => {
    const rule = rules.get(s.name);
    return rule !== undefined ? { ...s, rule } : s;
  });
}

/** what a plan changes of one set: its count before and after (static), or that it comes or goes */
export interface SetChange {
  name: string;
  rule?: string;
  kind: 'static' | 'learned';
  action: 'create' | 'update' | 'delete';
  /** static sets: elements before (absent: the set is new) */
  before?: number;
  /** static sets: elements after (absent: the set goes) */
  after?: number;
  /** static sets, when both element lists are known: elements added and removed */
  added?: number;
  removed?: number;
}

/**
 * The sets that differ between two rulesets (either may be absent: a create, a delete). A
 * static set whose digest and count are unchanged is not listed; a learned set only when it comes or
 * goes. `elements` (optional) looks up the elements of a digest, for added/removed counts.
 */
export function setChanges(
  before: string | undefined,
  after: string | undefined,
  elements?: (digest: string) => readonly string[] | undefined,
): SetChange[] {
  const b = new Map(declaredSets(before ?? '').map((s) => [s.name, s]));
  const a = declaredSets(after ?? '');
  const out: SetChange[] = [];
  const rule = (s: DeclaredSet) => (s.rule !== undefined ? { rule: s.rule } : {});
  for (const s of a) {
    const o = b.get(s.name);
    b.delete(s.name);
    // the same digest with another count: the observed set was edited in place (its comment
    // tells the count the kernel holds: resources/firewall/linux.ts)
    if (o && o.kind === s.kind && o.digest === s.digest && o.count === s.count) continue;
    const action = o ? 'update' : 'create';
    const change: SetChange = { name: s.name, ...rule(s), kind: s.kind, action };
    if (o?.count !== undefined) change.before = o.count;
    if (s.count !== undefined) change.after = s.count;
    const oe = o?.digest !== undefined ? elements?.(o.digest) : undefined;
    const ne = s.digest !== undefined ? elements?.(s.digest) : undefined;
    if (oe && ne && o?.digest !== s.digest)
      Object.assign(change, deltaCounts(elementDelta(oe, ne)));
    out.push(change);
  }
  for (const o of b.values())
    out.push({
      name: o.name,
      ...rule(o),
      kind: o.kind,
      action: 'delete',
      ...(o.count !== undefined ? { before: o.count } : {}),
    });
  return out;
}

/** the lines of a ruleset without the static sets' comments (their change is told per set) */
export function withoutSetComments(ruleset: string): string {
  return ruleset
    .split('\n')
    .filter((l) => !STATIC_SET_COMMENT_RE.test(l.trim()))
    .join('\n');
}

/** the ruleset of a firewall spec seen as a plain value (a change's before/after) */
export function rulesetOf(spec: unknown): string | undefined {
  const r =
    typeof spec === 'object' && spec !== null ? (spec as { ruleset?: unknown }).ruleset : undefined;
  return typeof r === 'string' ? r : undefined;
}
