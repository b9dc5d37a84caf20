/** `nft list table inet <name>` / `nft list tables` text → ownership and normalised ruleset. Pure. */
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

/** `nft list tables` → [family, name] pairs */
export function parseTableNames(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const l of text.split('\n')) {
    const m = /^table (\S+) (\S+)$/.exec(l.trim());
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}
