/**
 * Domain learning, the pure part: from a DNS response that passes through awg's resolver
 * path, which addresses to install for which rule, and a book of what is installed with its
 * expiry. No I/O; the clock and "does this address still carry connections" are injected.
 *
 * Which names count: the question name and every CNAME target on its chain. A rule learns
 * the chain's addresses when ANY of those names is listed by it — a listed question behind
 * an unlisted CDN name (`listed.example` → `edge.cdn.net`) and an unlisted alias of a listed
 * name (`alias.example` → `listed.example`) both route, as dnsmasq's `ipset=` and sing-box's
 * domain rules on resolved names do: the addresses are the listed service's addresses either
 * way.
 *
 * Entries are per (rule, address): two apps under different rules that resolve the same name
 * each get their rule's entry, and each expires on its own. An entry's expiry only moves
 * forward (a later answer with a smaller remaining TTL never shortens it). An expired entry
 * whose address still has open connections (`inUse`) is held, not removed, until they end.
 */
import { type ChainOptions, type ChainResult, readAnswerChain } from './dns-answers.js';

/** a rule's domain matcher: is this name (lower-case, no trailing dot) listed? */
export type NameMatcher = (name: string) => boolean;

export interface LearnRule {
  /** the rule's name (the key of its learned sets) */
  rule: string;
  listed: NameMatcher;
}

/** an address to install in `rule`'s learned set for `ttlMs` (a set element's timeout) */
export interface Install {
  rule: string;
  addr: string;
  family: 4 | 6;
  ttlMs: number;
  /** the first listed name of the chain that made the rule learn it (for explain/status) */
  name: string;
}

export interface LearnedEntry {
  rule: string;
  addr: string;
  family: 4 | 6;
  name: string;
  /** the TTL the entry was last learned with, ms: a refresh extends expiry by this much */
  ttlMs: number;
  /** clock ms */
  expiresAt: number;
}

export interface LearnerOptions extends ChainOptions {
  /** the clock, ms (monotonic is best) */
  now: () => number;
  /** does `addr` still carry connections of `rule`? (default: never) */
  inUse?: ((addr: string, rule: string) => boolean) | undefined;
  /** entries kept at most (a learned set's size); answers beyond it are not learned */
  maxEntries?: number | undefined;
}

export interface LearnResult {
  /** what to add (or re-add, refreshing the timeout) to the learned sets */
  installs: Install[];
  /** why nothing was learned from the message, when it could not be read */
  refused?: string | undefined;
  /** installs not made because the book is full */
  dropped: number;
}

export interface ExpireResult {
  /** expired and free: delete from the learned sets */
  remove: LearnedEntry[];
  /** expired but in use: keep (re-add with a timeout so the kernel keeps them too) */
  held: LearnedEntry[];
}

const key = (rule: string, addr: string) => `${rule}\u0000${addr}`;

export class Learner {
  private readonly book = new Map<string, LearnedEntry>();
  /** address → the rules that hold it (refresh and lookup run per connection) */
  private readonly byAddr = new Map<string, Set<string>>();
  private readonly opts: LearnerOptions;

  constructor(opts: LearnerOptions) {
    this.opts = opts;
  }

  /** entries in the book */
  get size(): number {
    return this.book.size;
  }

  /** Learns from the response `message` for the rules that apply to the asking app. */
  learn(message: Uint8Array, rules: readonly LearnRule[]): LearnResult {
    return this.learnChain(readAnswerChain(message, this.opts), rules);
  }

  /** `learn` for an already read chain. */
  learnChain(result: ChainResult, rules: readonly LearnRule[]): LearnResult {
    if (result.kind === 'none') return { installs: [], refused: result.reason, dropped: 0 };
    const { chain } = result;
    const now = this.opts.now();
    const max = this.opts.maxEntries ?? 65536;
    const installs: Install[] = [];
    let dropped = 0;
    for (const r of rules) {
      const name = chain.names.find((n) => r.listed(n));
      if (name === undefined) continue;
      for (const a of chain.addresses) {
        const k = key(r.rule, a.addr);
        const ttlMs = a.ttl * 1000;
        const had = this.book.get(k);
        if (!had && this.book.size >= max) {
          dropped++;
          continue;
        }
        const expiresAt = Math.max(had?.expiresAt ?? 0, now + ttlMs);
        const entry: LearnedEntry = {
          rule: r.rule,
          addr: a.addr,
          family: a.family,
          name: had?.name ?? name,
          ttlMs,
          expiresAt,
        };
        this.book.set(k, entry);
        if (!had) {
          const rs = this.byAddr.get(a.addr) ?? new Set<string>();
          rs.add(r.rule);
          this.byAddr.set(a.addr, rs);
        }
        installs.push({
          rule: r.rule,
          addr: a.addr,
          family: a.family,
          ttlMs: expiresAt - now,
          name,
        });
      }
    }
    return { installs, dropped };
  }

  /**
   * A connection to `addr` was seen (of `rule`, or of any rule when undefined): its entries'
   * expiry moves to now + their TTL. Returns the re-adds that carry the new timeouts.
   */
  refresh(addr: string, rule?: string): Install[] {
    const now = this.opts.now();
    const out: Install[] = [];
    for (const e of this.entriesOf(addr, rule)) {
      e.expiresAt = Math.max(e.expiresAt, now + e.ttlMs);
      out.push({
        rule: e.rule,
        addr: e.addr,
        family: e.family,
        ttlMs: e.expiresAt - now,
        name: e.name,
      });
    }
    return out;
  }

  /** Entries whose expiry has passed at `now`: removed from the book unless in use. */
  expire(now = this.opts.now()): ExpireResult {
    const remove: LearnedEntry[] = [];
    const held: LearnedEntry[] = [];
    for (const [k, e] of this.book) {
      if (e.expiresAt > now) continue;
      if (this.opts.inUse?.(e.addr, e.rule)) held.push({ ...e });
      else {
        this.book.delete(k);
        const rs = this.byAddr.get(e.addr);
        rs?.delete(e.rule);
        if (rs?.size === 0) this.byAddr.delete(e.addr);
        remove.push(e);
      }
    }
    return { remove, held };
  }

  /** The book's entries for `addr` (every rule), for explain and status. */
  lookup(addr: string): LearnedEntry[] {
    return this.entriesOf(addr).map((e) => ({ ...e }));
  }

  /** Every entry (a copy), e.g. to re-install after the learned sets were emptied. */
  entries(): LearnedEntry[] {
    return [...this.book.values()].map((e) => ({ ...e }));
  }

  private entriesOf(addr: string, rule?: string): LearnedEntry[] {
    if (rule !== undefined) {
      const e = this.book.get(key(rule, addr));
      return e ? [e] : [];
    }
    return [...(this.byAddr.get(addr) ?? [])].flatMap((r) => this.entriesOf(addr, r));
  }
}
