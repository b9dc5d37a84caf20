/**
 * `nft -t list ruleset` / `nft list table` text → ownership and normalised ruleset, and the
 * tables a ruleset listing names. Pure.
 */
import { NFT_MARKER } from './policy.js';
import { normaliseRuleset } from './normalise.js';

export interface TableListing {
  /** the table carries our marker comment */
  marked: boolean;
  /** its marker's owner tag (the state directory that made it; resources/owner-lock.ts), if any */
  owner?: string;
  /** normalised text; equals FirewallSpec.ruleset when nothing drifted */
  ruleset: string;
  /** the listing as read (with its counters) */
  text: string;
}

const TAGGED = /^(\s*)comment "managed-by=awg owner=([0-9a-f]{12})"$/;

/**
 * The table's marker with its owner tag (`managed-by=awg owner=<id>`, as loaded by the driver)
 * as the renderer writes it (`managed-by=awg`), and the tag: the spec compares without it.
 */
export function untagTable(ruleset: string): { ruleset: string; owner?: string } {
  const lines = ruleset.split('\n');
  // the table's own comment is the first statement inside `table ... {`
  const m = lines[1] !== undefined ? TAGGED.exec(lines[1]) : null;
  if (!m) return { ruleset };
  lines[1] = `${m[1]}comment "${NFT_MARKER}"`;
  return { ruleset: lines.join('\n'), owner: m[2]! };
}

/** the rendered table (or a transaction of it) with the owner tag in its marker */
export function tagTable(text: string, owner: string | undefined): string {
  return owner
    ? text.replace(`comment "${NFT_MARKER}"`, `comment "${NFT_MARKER} owner=${owner}"`)
    : text;
}

export function parseTableListing(text: string): TableListing {
  const { ruleset, owner } = untagTable(normaliseRuleset(text));
  const lines = ruleset.split('\n');
  return {
    marked: lines[1] === `comment "${NFT_MARKER}"`,
    ...(owner ? { owner } : {}),
    ruleset,
    text,
  };
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
