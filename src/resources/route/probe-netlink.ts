/**
 * Linux: the routing facts (resources/facts.ts `linuxRouting`, `linuxDefaultRoutes`) read
 * over rtnetlink in this process instead of by `ip` processes (a process start costs
 * 5–30 ms quiet and several times that on a loaded host; an apply ran up to nine of them):
 * one route dump per family, one rule dump per family, a link dump when a route's interface
 * is to be named, one RTM_GETROUTE per endpoint. The messages become the rows `ip -j -N`
 * prints (route/reach.ts, route/parse.ts read both), with iproute2 6.1's filters:
 *
 * - `route show table all exact 0/0` (`::/0`): the family's routes of every table with a
 *   destination length of 0, cached (RTM_F_CLONED) ones left out;
 * - `route show table main` and `… table main default`: those of table 254 (and length 0);
 * - `rule show`: every rule of the family; `table` when the rule names one, `action` for a
 *   rule that is neither a lookup, a goto, a nop nor a nat (iproute2 prints those otherwise);
 * - `route get ADDR mark M`: the same request (native/rtnl-routing.ts `buildRouteGet`); its
 *   error is the kernel's errno as strerror(3) words it (iproute2's `RTNETLINK answers: …`).
 *
 * A dump the kernel interrupts (a concurrent change: NLM_F_DUMP_INTR) is read again, up to
 * three times (native/netlink.ts `dumpConsistent`, the link dump's too).
 * test/netns/routing-probe.test.ts compares both paths on the real kernel.
 */
import { strerror, SyscallError } from '../../native/libc.js';
import { NetlinkSocket, dumpConsistent, dumpLinks } from '../../native/netlink.js';
import { AF_INET, AF_INET6, parseAddr, type NlMessage } from '../../native/rtnl.js';
import {
  FR_ACT_GOTO,
  FR_ACT_NOP,
  FR_ACT_TO_TBL,
  RTM_F_CLONED,
  RTN_NAT,
  buildGetRouteDump,
  buildGetRuleDump,
  buildRouteGet,
  parseRouteRow,
  parseRuleRow,
  type RouteRow as NlRoute,
  type RuleRow as NlRule,
} from '../../native/rtnl-routing.js';
import type { Exec } from '../../util/exec.js';
import { runsOnHost } from '../prefetch.js';
import { ruleRowOf } from './rule-netlink.js';
import type { IpRouteJson } from './parse.js';
import type { RuleRow } from './reach.js';

const MAIN = 254;

const afOf = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

const RTPROT_BOOT = 3;

/**
 * A route as `ip -j -N route show` prints it, the fields awg reads: `-N` prints a type and a
 * protocol as numbers; no type for unicast, no protocol for `boot`, no table for main when
 * one table was asked for (given here anyway: the readers take main for a missing one).
 */
export function routeJson(r: NlRoute, linkName: (ifindex: number) => string): IpRouteJson {
  const hostLen = r.family === AF_INET ? 32 : 128;
  const out: IpRouteJson = {};
  if (r.type !== 1) out.type = String(r.type);
  out.dst =
    r.dst === undefined
      ? r.dstLen
        ? `0/${r.dstLen}`
        : 'default'
      : r.dstLen !== hostLen
        ? `${r.dst}/${r.dstLen}`
        : r.dst;
  if (r.gateway !== undefined) out.gateway = r.gateway;
  if (r.via !== undefined) out.via = { host: r.via };
  if (r.oif !== undefined) out.dev = linkName(r.oif);
  out.table = String(r.table);
  if (r.protocol !== RTPROT_BOOT) out.protocol = String(r.protocol);
  if (r.priority !== undefined) out.metric = r.priority;
  return out;
}

/** A rule as `ip -j -N rule show` prints it, the fields the probe reads (`-N`: an action as a number). */
export function ruleJson(r: NlRule): RuleRow {
  const out: RuleRow = { priority: r.priority };
  if (r.table) out.table = String(r.table);
  const printedOtherwise =
    r.action === FR_ACT_TO_TBL ||
    r.action === FR_ACT_GOTO ||
    r.action === FR_ACT_NOP ||
    r.action === RTN_NAT;
  if (!printedOtherwise) out.action = String(r.action);
  return out;
}

/** what the reader asks of its socket (tests replay captured replies through it) */
export type RoutingSocket = Pick<
  NetlinkSocket,
  'portid' | 'nextSeq' | 'request' | 'dump' | 'close'
>;

/**
 * One NETLINK_ROUTE socket and what has been read through it: each family's routes (only
 * those of a length of 0 or of table main are kept) and rules, the links' names.
 */
export class RoutingReader {
  private readonly routeCache = new Map<number, NlRoute[]>();
  private names: Map<number, string> | undefined;

  constructor(private readonly sock: RoutingSocket) {}

  /** a socket in this process's network namespace, or in `netns` (tests) */
  static open(netns?: string): RoutingReader {
    return new RoutingReader(NetlinkSocket.open(netns !== undefined ? { netns } : {}));
  }

  close(): void {
    this.sock.close();
  }

  private dump<T>(build: (seq: number) => Buffer, parse: (m: NlMessage) => T | undefined): T[] {
    return dumpConsistent(this.sock, build, parse);
  }

  /** the family's routes of length 0 (every table) and of table main, cached ones left out */
  routes(f: 4 | 6): NlRoute[] {
    const af = afOf(f);
    let rows = this.routeCache.get(af);
    if (!rows) {
      rows = this.dump<NlRoute>(
        (seq) => buildGetRouteDump(af, seq, this.sock.portid),
        (m) => {
          const r = parseRouteRow(
            m,
            (family, table, dstLen) => family === af && (dstLen === 0 || table === MAIN),
          );
          return r && !(r.flags & RTM_F_CLONED) ? r : undefined;
        },
      );
      this.routeCache.set(af, rows);
    }
    return rows;
  }

  rules(f: 4 | 6): NlRule[] {
    const af = afOf(f);
    return this.dump<NlRule>(
      (seq) => buildGetRuleDump(af, seq, this.sock.portid),
      (m) => {
        const r = parseRuleRow(m);
        return r && r.family === af ? r : undefined;
      },
    );
  }

  /** the name of a link (iproute2 prints `if<index>` for one it cannot name) */
  linkName = (ifindex: number): string => {
    this.names ??= new Map(
      dumpLinks(this.sock).flatMap((l) => (l.ifname ? [[l.ifindex, l.ifname] as const] : [])),
    );
    return this.names.get(ifindex) ?? `if${ifindex}`;
  };

  /** `ip route get ADDR mark M`: undefined when the kernel has a route, else its complaint */
  routeGet(address: string, mark: number): string | undefined {
    try {
      this.sock.request(
        buildRouteGet(parseAddr(address), mark, this.sock.nextSeq(), this.sock.portid),
      );
      return undefined;
    } catch (e) {
      if (!(e instanceof SyscallError)) throw e;
      let words = '';
      try {
        words = strerror(e.errno);
      } catch {
        /* no words: the fallback below */
      }
      return words.trim() || 'no route';
    }
  }

  /**
   * `ip -j -N route show table all`, the routes of the tables `keep` wants: a dump of its own
   * (the route driver's observation, route/linux.ts)
   */
  tableRoutesJson(f: 4 | 6, keep: (table: number) => boolean): IpRouteJson[] {
    const af = afOf(f);
    return this.dump<NlRoute>(
      (seq) => buildGetRouteDump(af, seq, this.sock.portid),
      (m) => {
        const r = parseRouteRow(m, (family) => family === af);
        return r && keep(r.table) && !(r.flags & RTM_F_CLONED) ? r : undefined;
      },
    ).map((r) => routeJson(r, this.linkName));
  }

  /** `ip -j -N route show table all exact 0/0` (`::/0`) */
  defaultsJson(f: 4 | 6): IpRouteJson[] {
    return this.routes(f)
      .filter((r) => r.dstLen === 0)
      .map((r) => routeJson(r, this.linkName));
  }

  /** `ip -j -N route show table main` */
  mainJson(f: 4 | 6): IpRouteJson[] {
    return this.routes(f)
      .filter((r) => r.table === MAIN)
      .map((r) => routeJson(r, this.linkName));
  }

  /** `ip -j -N route show table main default` */
  mainDefaultsJson(f: 4 | 6): IpRouteJson[] {
    return this.routes(f)
      .filter((r) => r.table === MAIN && r.dstLen === 0)
      .map((r) => routeJson(r, this.linkName));
  }

  /** `ip -j -N rule show` */
  rulesJson(f: 4 | 6): RuleRow[] {
    return this.rules(f).map(ruleJson);
  }

  /** `ip -j -N rule show`, every key iproute2 6.1 prints (the rule driver's observation, route/rule-netlink.ts) */
  ruleRowsJson(f: 4 | 6): Record<string, unknown>[] {
    const af = afOf(f);
    return this.dump(
      (seq) => buildGetRuleDump(af, seq, this.sock.portid),
      (m) => (m.payload.length > 0 && m.payload[0] === af ? ruleRowOf(m) : undefined),
    );
  }
}

/**
 * A reader of this host's routes and rules in this process when `exec` runs its commands on
 * this host; undefined otherwise, or when no netlink socket opens (`ip` processes then).
 */
export function routingReader(exec: Pick<Exec, 'read'>): RoutingReader | undefined {
  if (!runsOnHost(exec)) return undefined;
  try {
    return RoutingReader.open();
  } catch {
    return undefined;
  }
}
