/**
 * What one reading of the kernel's traffic counters holds, per flow, before anything is
 * aggregated (`awg top`, the monitor). A platform's TrafficSource produces readings; the
 * monitor (aggregate.ts) turns two readings into rates and totals per process, rule and
 * tunnel. Pure types.
 *
 * Byte counts are cumulative payload bytes as the kernel counts them for that flow (never
 * estimates): what the application wrote and read, without IP/TCP/UDP headers, so that they
 * compare with what the application itself reports (iperf3's own totals).
 */

export type FlowProto = 'tcp' | 'udp';

export interface FlowEnd {
  /** canonical address (ipaddr.js toString; IPv4-mapped IPv6 shown as IPv4) */
  addr: string;
  port: number;
}

export interface FlowReading {
  /**
   * Stable for the life of the flow: `<proto>/<family>/<local>/<remote>` plus the socket's
   * identity where one is known (TCP: the socket cookie), so a new flow on a reused 4-tuple
   * never inherits an old one's counts.
   */
  key: string;
  proto: FlowProto;
  family: 4 | 6;
  local: FlowEnd;
  remote: FlowEnd;
  /** the process whose file table holds the flow's socket; absent: not attributed */
  pid?: number;
  /** the socket's owner uid */
  uid?: number;
  /** cgroup v2 path of the socket, relative to the cgroup2 mount (`/awg/browser`), when known */
  cgroup?: string;
  /** the conntrack mark of the flow (routing bits included), when it has a conntrack entry */
  mark?: number;
  /**
   * The rule that routed the flow and its route (`direct`, `blocked`, a tunnel), where the
   * platform knows them per flow (macOS: the flow router's decision); elsewhere they follow
   * from `cgroup` and `mark`.
   */
  rule?: string;
  route?: string;
  /** cumulative payload bytes sent and received by this host on this flow */
  sent: number;
  received: number;
  /** the flow ended since the last reading; its counts are final */
  closed?: boolean;
}

export interface ProcessInfo {
  pid: number;
  /** /proc/PID/exe (or libproc's path); absent when unreadable (kernel thread, exited) */
  exe?: string;
  /** comm / the short name */
  name: string;
  uid?: number;
  /** cgroup v2 path relative to the cgroup2 mount, when known */
  cgroup?: string;
}

export interface Reading {
  /** a monotonic clock, milliseconds */
  at: number;
  flows: FlowReading[];
  /** every pid named by a flow */
  processes: Map<number, ProcessInfo>;
  /** what the reading could not do (e.g. conntrack accounting off: UDP counts missing) */
  warnings: string[];
}

/** One platform's way to read the counters (Linux: sock_diag + conntrack + /proc). */
export interface TrafficSource {
  read(): Promise<Reading>;
  close(): void;
}
