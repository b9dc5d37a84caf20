/**
 * The DNS learning stub (resources/dns-stub/stub.ts) hosted in the daemon. It frames each
 * run: before the run converges the stub listens (the firewall that redirects every DNS query
 * to it may load in this run) and takes the run's rules; after the run, when the firewall was
 * applied (a whole-table replace empties the learned sets) the stub re-adds its book, and
 * when the policy has no stub any more it stops (the redirect left with that run). A stub
 * that cannot listen fails the run before anything is applied: a redirect to nothing would
 * cut every application's DNS.
 *
 * Domain rules need the daemon: a one-shot `awg apply` has no stub (the model must not ask for
 * the redirect there).
 */
import type { LearnedBook } from './options.js';
import { AwgError } from '../errors.js';
import type { DestinationSet } from '../config/lists.js';
import type { AnyChange } from '../model/change.js';
import type { DaemonStatus } from './status-document.js';
import { linuxStubDeps } from '../resources/dns-stub/linux.js';
import {
  DnsStub,
  type DnsStubConfig,
  type DnsStubDeps,
  type DnsStubStats,
  type TunnelResolvers,
} from '../resources/dns-stub/stub.js';

/** what the stub needs of a run's firewall policy (model/policy.ts FirewallPolicy) */
export interface StubPolicy {
  dnsStub?: { port: number; tunnelPort?: number | undefined } | undefined;
  fwmarkMask: number;
  bypassMark: number;
  /** ordered rules: those with learned sets learn; those with per-app DNS name their tunnel's resolvers */
  apps: readonly {
    name: string;
    action: { type: string; mark?: number };
    dns?: { v4?: string; v6?: string } | undefined;
    to?: { learned4?: string; learned6?: string } | undefined;
  }[];
}

type Domains = Pick<DestinationSet, 'domains'>;
type DnsStubStatusDoc = NonNullable<DaemonStatus['dnsStub']>;

/**
 * The stub's configuration for a policy, or undefined when it has none. A rule learns when it
 * has a learned set and its destinations (by rule name) list domains.
 */
export function stubConfigOf(
  policy: StubPolicy | undefined,
  table: string,
  destinations: ReadonlyMap<string, Domains> | undefined,
): DnsStubConfig | undefined {
  if (!policy?.dnsStub) return undefined;
  const rules: DnsStubConfig['rules'] = [];
  const resolvers = new Map<number, TunnelResolvers>();
  for (const a of policy.apps) {
    const mark = a.action.mark;
    if (a.dns && a.action.type === 'mark' && mark !== undefined && !resolvers.has(mark))
      resolvers.set(mark, { mark, v4: a.dns.v4, v6: a.dns.v6 });
  }
  for (const a of policy.apps) {
    const to = a.to;
    if (to?.learned4 === undefined && to?.learned6 === undefined) continue;
    const d = destinations?.get(a.name);
    // names, full names, keywords and regexes alike: the set is the matcher (no copy)
    if (!d || d.domains.size === 0) continue;
    rules.push({ rule: a.name, domains: d.domains, sets: { v4: to.learned4, v6: to.learned6 } });
  }
  const tunnelPort = policy.dnsStub.tunnelPort;
  return {
    port: policy.dnsStub.port,
    ...(tunnelPort !== undefined
      ? { tunnelPort, tunnelResolvers: [...resolvers.values()].sort((a, b) => a.mark - b.mark) }
      : {}),
    table,
    rules,
    fwmarkMask: policy.fwmarkMask,
    bypassMark: policy.bypassMark,
  };
}

/** whether a run's plan changed our firewall table (a replace empties the learned sets) */
export function firewallChanged(changes: readonly AnyChange[] | undefined): boolean {
  return (changes ?? []).some((c) => c.kind === 'firewall' && c.action !== 'noop');
}

export interface DnsStubHostOptions {
  /** the stub's kernel side (default: this host's, linux.ts) */
  deps?: (() => DnsStubDeps & { close?(): void }) | undefined;
}

export class DnsStubHost {
  private stub: DnsStub | undefined;
  private deps: (DnsStubDeps & { close?(): void }) | undefined;

  constructor(private readonly opts: DnsStubHostOptions = {}) {}

  get running(): boolean {
    return this.stub?.running ?? false;
  }

  /** Before a run: listen (or take the new rules) when the policy has a stub. */
  async before(cfg: DnsStubConfig | undefined): Promise<void> {
    if (!cfg) return;
    this.deps ??= (this.opts.deps ?? (() => linuxStubDeps()))();
    this.stub ??= new DnsStub(this.deps);
    try {
      await this.stub.update(cfg);
    } catch (e) {
      throw new AwgError(
        'driver',
        `the DNS stub cannot listen on 127.0.0.1/::1 ports ${cfg.port}${cfg.tunnelPort !== undefined ? ` and ${cfg.tunnelPort}` : ''} (routing.proxyPortBase + 96, + 97), so domain rules cannot be applied: ${(e as Error).message}`,
      );
    }
  }

  /**
   * After a run: re-add the book when the table was replaced; stop when the run converged
   * without a stub (a failed run may have restored a table that still redirects to it).
   */
  async after(
    cfg: DnsStubConfig | undefined,
    ok: boolean,
    firewallApplied: boolean,
  ): Promise<void> {
    if (!cfg) {
      if (ok) this.close();
      return;
    }
    if (firewallApplied) await this.stub?.resync();
  }

  stats(): DnsStubStats | undefined {
    return this.stub?.running ? this.stub.stats() : undefined;
  }

  /** the status document's `dnsStub` (status-document.ts), while the stub runs */
  status(): DnsStubStatusDoc | undefined {
    const s = this.stats();
    const port = this.stub?.port;
    if (!s || port === undefined) return undefined;
    const { meanInstallMs: _mean, ...counts } = s;
    return { port, ...counts };
  }

  /** Explain's view of the book (options.ts LearnedBook); empty while the stub does not run */
  readonly book: LearnedBook = {
    lookup: (addr) =>
      (this.stub?.lookup(addr) ?? []).map((e) => ({
        rule: e.rule,
        name: e.name,
        expiresAt: e.expiresAt,
      })),
    addressesOf: (name) => {
      const n = name.toLowerCase().replace(/\.$/, '');
      return [
        ...new Set(
          (this.stub?.entries().entries ?? []).filter((e) => e.name === n).map((e) => e.addr),
        ),
      ];
    },
    now: () => this.stub?.entries().now ?? 0,
  };

  /** rule → how many names its learned addresses came from (status: a rule's `learnedNames`) */
  learnedNames(): ReadonlyMap<string, number> {
    const by = new Map<string, Set<string>>();
    for (const e of this.stub?.entries().entries ?? []) {
      const s = by.get(e.rule) ?? new Set<string>();
      s.add(e.name);
      by.set(e.rule, s);
    }
    return new Map([...by].map(([r, s]) => [r, s.size]));
  }

  close(): void {
    this.stub?.stop();
    this.stub = undefined;
    this.deps?.close?.();
    this.deps = undefined;
  }
}
