/**
 * The macOS host model's state (model.ts): routes, interfaces, network services, PF, dummynet
 * pipes; the types of its test hooks (faults, triggers); and what the command handlers share.
 */
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';

export interface MRoute {
  family: 4 | 6;
  /** canonical CIDR */
  dst: string;
  /** next hop IP, `link#N`, or an interface name (a `-interface` route) */
  gateway: string;
  flags: string;
  netif: string;
  /** routes the kernel made for an interface (go with it) */
  system?: boolean;
  /** netstat's Expire column (`!`, seconds of an ARP entry) */
  expire?: string;
}

export interface MInterface {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  inet: { address: string; prefixlen: number }[];
  inet6: { address: string; prefixlen: number }[];
}

export interface MService {
  name: string;
  device: string;
  enabled: boolean;
  dns: string[];
  search: string[];
  /** what DHCP gave the service: in effect while its manual list is `Empty` */
  dhcp?: { dns: string[]; search: string[] };
}

export interface MPf {
  enabled: boolean;
  /** main ruleset as `pfctl -sr` prints it */
  main: string[];
  /** main translation rules as `pfctl -sn` prints them (nat-/rdr-anchors of pf.conf) */
  nat: string[];
  anchors: Map<string, string[]>;
  /** an anchor's translation rules (`-a X -sn`) and tables (name → entries) */
  anchorNat: Map<string, string[]>;
  anchorTables: Map<string, Map<string, string[]>>;
  /** main dummynet rules as `pfctl -s dummynet` prints them (dummynet-anchors of pf.conf) */
  dummynet: string[];
  /** an anchor's dummynet rules (`-a X -s dummynet`) */
  anchorDummynet: Map<string, string[]>;
  /** -E references: token → pid */
  refs: Map<string, number>;
  /**
   * references without a token: `pfctl -e` (DIOCSTART) adds one to XNU's pf_enabled_ref_count
   * when it starts PF (or when it is running and every reference has a token), and `pfctl -X`
   * (DIOCSTOPREF) stops PF only when that count reaches 0 — bsd/net/pf_ioctl.c
   */
  plainRefs: number;
  /** state-table flushes (pfctl -F states) */
  stateFlushes: number;
}

export interface Fault {
  /** fail the mutation whose command line matches (and the `nth` such, from 1; 'every': all of them) */
  match: RegExp;
  nth?: number | 'every';
}

/** something that happens on the host right after a mutation (an engine dying mid-apply) */
export interface Trigger {
  /** after the `nth` mutation (from 1) whose command line matches */
  match: RegExp;
  nth?: number;
  run: (host: MacHost) => void;
}

/**
 * A dummynet pipe as xnu keeps it (bsd/netinet/ip_dummynet.c config_pipe): bandwidth in
 * bit/s (0: unlimited), delay in ms, a queue in slots or in bytes, a loss rate (0..1).
 */
export interface MPipe {
  bandwidth: number;
  delayMs: number;
  queue: { slots: number } | { bytes: number };
  plr: number;
}

/** a handler's check that its command line was issued as a read or as a mutation */
export type Need = (k: 'read' | 'mutate') => void;

export const ok = (stdout = '', stderr = ''): ExecResult => ({ stdout, stderr, code: 0 });
export const fail = (stderr: string, code = 1, stdout = ''): ExecResult => ({
  stdout,
  stderr,
  code,
});
