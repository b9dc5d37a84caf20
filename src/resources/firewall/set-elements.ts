/**
 * Elements of the firewall's static destination sets (`to.cidrs`, `to.lists`). They are not
 * part of FirewallSpec.ruleset: a list of 100,000 prefixes would make every plan, state
 * record, drift comparison and `awg diff` as large as the list. The ruleset carries each
 * set's count and digest in the set's comment (`awg n=<count> sha256=<digest>`), so a change
 * of content is a change of the ruleset, and the elements are kept here by digest: put by
 * the renderer (firewallSpec) and by a read of the live table (a rollback re-adds what was
 * there), taken by the transaction that loads the table.
 */
import { createHash } from 'node:crypto';
import { AwgError } from '../../errors.js';
import { formatInterval4, formatInterval6 } from '../../config/lists.js';
import type { DumpedElement } from '../../native/nftset.js';
import {
  STATIC_SET_COMMENT_RE as COMMENT_RE,
  declaredSets,
  staticSetComment,
} from '../../model/firewall-sets.js';

export { staticSetComment };

const byDigest = new Map<string, readonly string[]>();
/** digests kept at most (each a whole list); the oldest goes first */
const MAX_KEPT = 64;

/** the SHA-256 of the elements, each followed by a newline (hashed as one text: 3–5× faster) */
export function elementsDigest(elements: readonly string[]): string {
  return createHash('sha256')
    .update(elements.length ? elements.join('\n') + '\n' : '')
    .digest('hex')
    .slice(0, 32);
}

export function keepElements(digest: string, elements: readonly string[]): void {
  if (byDigest.has(digest)) byDigest.delete(digest);
  byDigest.set(digest, elements);
  while (byDigest.size > MAX_KEPT) byDigest.delete(byDigest.keys().next().value!);
}

/** the elements kept for `digest` (this process rendered or listed them), or undefined */
export function knownElements(digest: string): readonly string[] | undefined {
  return byDigest.get(digest);
}

export interface StaticSetRef {
  name: string;
  count: number;
  digest: string;
}

/** the static sets a normalised ruleset declares (a `set` whose comment carries a digest) */
export function staticSets(ruleset: string): StaticSetRef[] {
  return declaredSets(ruleset).flatMap((d) =>
    d.kind === 'static' ? [{ name: d.name, count: d.count!, digest: d.digest! }] : [],
  );
}

/** elements per line of `add element` (nft reads one command per line; a bound on its size) */
const CHUNK = 8192;

/**
 * `add element` commands that fill the static sets of `ruleset` (after the table is loaded),
 * but those named in `skip`
 */
export function elementCommands(
  family: string,
  table: string,
  ruleset: string,
  skip?: ReadonlySet<string>,
): string {
  const out: string[] = [];
  for (const s of staticSets(ruleset)) {
    if (skip?.has(s.name)) continue;
    const els = byDigest.get(s.digest);
    if (!els)
      throw new AwgError(
        'bug',
        `the elements of nft set ${s.name} (sha256=${s.digest}, ${s.count} entries) are not known to this process`,
      );
    for (let i = 0; i < els.length; i += CHUNK)
      out.push(
        `add element ${family} ${table} ${s.name} { ${els.slice(i, i + CHUNK).join(', ')} }`,
      );
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/**
 * A table listing's static-set elements, kept by the digest of the set's comment (what
 * the table holds now, so a rollback to it can load it again). Elements as nft prints them.
 */
export function keepListedElements(listing: string): void {
  let set: string | undefined;
  let digest: string | undefined;
  let pending: string[] | undefined;
  for (const raw of listing.split('\n')) {
    const l = raw.trim();
    const s = /^set (\S+) \{$/.exec(l);
    if (s) {
      set = s[1];
      digest = undefined;
      continue;
    }
    if (set === undefined) continue;
    if (l === '}') {
      set = undefined;
      continue;
    }
    const c = COMMENT_RE.exec(l);
    if (c) digest = c[2];
    if (pending !== undefined || l.startsWith('elements = {')) {
      // a digest this process knows already: its elements are not collected again
      const wanted = digest !== undefined && !byDigest.has(digest);
      pending ??= [];
      if (wanted) pending.push(l);
      if (!l.endsWith('}')) continue;
      if (wanted) {
        const body = pending.join(' ').slice('elements = {'.length, -1).trim();
        keepElements(
          digest!,
          body.split(',').map((e) => e.trim()),
        );
      }
      pending = undefined;
    }
  }
}

/** a dumped element's key as a number (IPv4) or bigint (IPv6) */
const keyValue = (k: Buffer): number | bigint =>
  k.length === 4 ? k.readUInt32BE(0) : (k.readBigUInt64BE(0) << 64n) | k.readBigUInt64BE(8);

/** the intervals an interval set's dump holds (start elements, each closed by the next end) */
export function intervalCount(dumped: readonly DumpedElement[]): number {
  let n = 0;
  for (const e of dumped) if (!e.end) n++;
  return n;
}

/**
 * An interval set's dump (native/nftset.ts dumpSetElements) as element strings (an address,
 * `net/len`, `first-last`; in address order): what loads the same set again. An end element
 * with no start before it (nft adds one at address 0) is skipped.
 */
export function dumpedIntervals(dumped: readonly DumpedElement[]): string[] {
  const sorted = [...dumped].sort(
    (a, b) => Buffer.compare(a.key, b.key) || (a.end === b.end ? 0 : a.end ? -1 : 1),
  );
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (e.end) continue;
    const next = sorted[i + 1];
    const v6 = e.key.length === 16;
    const start = keyValue(e.key);
    const last =
      next?.end === true
        ? v6
          ? (keyValue(next.key) as bigint) - 1n
          : (keyValue(next.key) as number) - 1
        : v6
          ? (1n << 128n) - 1n
          : 0xffffffff;
    if (next?.end === true) i++;
    out.push(
      v6
        ? formatInterval6({ start: start as bigint, end: last as bigint })
        : formatInterval4({ start: start as number, end: last as number }),
    );
  }
  return out;
}
