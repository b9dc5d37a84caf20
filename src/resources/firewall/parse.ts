/**
 * `nft -t list ruleset` / `nft list table` text → ownership and normalised ruleset, and the
 * tables a ruleset listing names. Pure.
 */
import { NFT_MARKER } from './policy.js';
import { normaliseRuleset } from './render.js';

export interface TableListing {
  /** the table carries our marker comment */
  marked: boolean;
  /** normalised text; equals FirewallSpec.ruleset when nothing drifted */
  ruleset: string;
  /** the listing as read (with its counters) */
  text: string;
}

export function parseTableListing(text: string): TableListing {
  const ruleset = normaliseRuleset(text);
  const lines = ruleset.split('\n');
  // the table's own comment is the first statement inside `table ... {`
  return { marked: lines[1] === `comment "${NFT_MARKER}"`, ruleset, text };
}

/** `nft list tables` or `nft list ruleset` → [family, name] pairs */
export function parseTableNames(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const l of text.split('\n')) {
    const m = /^table (\S+) (\S+)( \{)?$/.exec(l.trimEnd());
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

/**
 * One table's block of a ruleset listing (`table <family> <name> {` at the start of a line up
 * to the first `}` alone on a line), or undefined when the listing has none.
 */
export function tableOfRuleset(text: string, family: string, name: string): string | undefined {
  const head = `table ${family} ${name} {`;
  const at = text.startsWith(head + '\n') ? 0 : text.indexOf(`\n${head}\n`) + 1;
  if (at === 0 && !text.startsWith(head + '\n')) return undefined;
  const end = text.indexOf('\n}', at);
  return end < 0 ? undefined : text.slice(at, end + 2) + '\n';
}
