/**
 * A destination rule's sets in the status (`rules[].sets`, `learned`): each set's route_out
 * line counter (`app/<rule>/@<set>`) and entries, read from our nft table by
 * resources/firewall/counters.ts. Pure.
 */
import type { AppRule, FirewallPolicy } from '../model/policy.js';
import type { SetCounter } from '../resources/firewall/counters.js';
import type { RuleCounter } from './core.js';

type RuleSets = Pick<RuleCounter, 'sets' | 'learned'>;

/**
 * A rule's destination sets as the model names them (`to`), each with its line's counter and
 * entries as the table holds them; a set the table lacks counts 0 (a static one: the entries
 * it is meant to hold). `learned`: the learned sets' addresses, when they could be read.
 */
export function destinationCounters(
  a: Pick<AppRule, 'to'> | undefined,
  read: readonly SetCounter[],
  policy?: Pick<FirewallPolicy, 'sets'>,
): RuleSets {
  const to = a?.to;
  if (!to) return read.length ? fromRead(read) : {};
  const names = [to.static4, to.learned4, to.static6, to.learned6].flatMap((n) =>
    n !== undefined ? [n] : [],
  );
  const sets = names.map((name) => {
    const r = read.find((x) => x.set === name);
    const learned = name === to.learned4 || name === to.learned6;
    // static: the count of the config's content (a set changed in place keeps the comment
    // it was made with: resources/firewall/set-contents.ts), else the table's
    const elements = learned
      ? r?.elements
      : (policy?.sets?.find((d) => d.name === name)?.elements?.length ?? r?.elements);
    return {
      name,
      kind: learned ? ('learned' as const) : ('static' as const),
      ...(elements !== undefined ? { elements } : {}),
      packets: r?.packets ?? 0,
      bytes: r?.bytes ?? 0,
    };
  });
  return { sets, ...learnedOf(sets) };
}

/** direct mode (no config): the sets the table's lines name */
export function fromRead(read: readonly SetCounter[]): RuleSets {
  const sets = read.map((r) => ({
    name: r.set,
    kind: r.kind,
    ...(r.elements !== undefined ? { elements: r.elements } : {}),
    packets: r.packets,
    bytes: r.bytes,
  }));
  return sets.length ? { sets, ...learnedOf(sets) } : {};
}

function learnedOf(sets: NonNullable<RuleCounter['sets']>): { learned?: number } {
  const l = sets.filter((s) => s.kind === 'learned');
  if (!l.length || l.some((s) => s.elements === undefined)) return {};
  return { learned: l.reduce((n, s) => n + s.elements!, 0) };
}
