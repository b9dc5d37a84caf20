/** The DNS learning stub's configuration, dependencies and statistics (stub.ts). */
import type { NftSetWriter } from '../../native/nftset.js';
import type { ReceivedDatagram } from '../../native/conntrack.js';
import type { Socket } from 'node:net';

/** a rule's domain matcher (config/domain-set.ts DomainSet) */
export interface DomainMatch {
  matchDomain(name: string): boolean;
}

export interface DnsStubRule {
  rule: string;
  domains: DomainMatch;
  /** the rule's learned sets; a family without one learns nothing */
  sets: { v4?: string | undefined; v6?: string | undefined };
}

/** a tunnel's per-app resolvers (model: AppRule.dns), by the tunnel's mark */
export interface TunnelResolvers {
  mark: number;
  v4?: string | undefined;
  v6?: string | undefined;
  /** default 53 */
  port?: number | undefined;
}

export interface DnsStubConfig {
  /** the listeners' port on 127.0.0.1 and ::1 (UDP and TCP): queries go to their original resolver */
  port: number;
  /**
   * the per-app DNS listeners' port: queries of rules with per-app DNS (redirected here by
   * their cgroup) go to the resolver of the tunnel their conntrack mark names
   */
  tunnelPort?: number | undefined;
  tunnelResolvers?: readonly TunnelResolvers[] | undefined;
  /** nft table (family inet) holding the learned sets */
  table: string;
  rules: DnsStubRule[];
  /** the claimed mark bits and the bypass mark (model/alloc.ts) */
  fwmarkMask: number;
  bypassMark: number;
  /** TTL clamp of learned elements, seconds (dns-answers.ts defaults: 10, 3600) */
  minTtl?: number | undefined;
  maxTtl?: number | undefined;
}

/** where a redirected query was going, and the routing decision its connection carries */
export interface QueryOrigin {
  addr: string;
  port: number;
  /** the conntrack mark (0: none) */
  mark: number;
}

/** a query as our listener received it: the application's address and port, our address */
export type UdpPeer = ReceivedDatagram;

/** The kernel's side: injected so the logic runs on loopback in unit tests. */
export interface DnsStubDeps {
  /** original destination of a redirected UDP query (ctnetlink by the reply tuple) */
  udpOrigin(peer: UdpPeer): QueryOrigin | undefined;
  /** original destination of a redirected TCP connection (SO_ORIGINAL_DST + ctnetlink) */
  tcpOrigin(sock: Socket): QueryOrigin | undefined;
  /** a set writer for `table` */
  openWriter(table: string): Pick<NftSetWriter, 'add' | 'delete' | 'close'>;
  /** addresses that carry open connections now (one call per expiry pass) */
  openDestinations(): ReadonlySet<string>;
  /** set SO_MARK on upstream sockets (false: unprivileged tests) */
  marks: boolean;
  now(): number;
  /** expiry pass period, ms (default 1000) */
  tickMs?: number | undefined;
  /** upstream silence before giving up on a query, ms (default 5000) */
  upstreamTimeoutMs?: number | undefined;
}

export interface DnsStubStats {
  /** queries received (UDP datagrams and TCP messages) */
  queries: number;
  /** answers delivered to applications */
  answers: number;
  servfails: number;
  upstreamTimeouts: number;
  /** answers from which at least one element was installed */
  learnedAnswers: number;
  /** elements added or refreshed */
  installs: number;
  installFailures: number;
  /** book entries (rule, address) = elements held in learned sets */
  elements: number;
  /** distinct names that made entries */
  names: number;
  /** mean time from upstream answer to kernel ack, ms */
  meanInstallMs: number;
}
