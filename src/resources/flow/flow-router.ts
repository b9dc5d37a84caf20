/**
 * The flow router: per-app routing where the firewall cannot match a process (macOS: PF has
 * no process match). PF `rdr` sends the apps' TCP to this router's local listener (the
 * transparent proxy, reused); per accepted connection it asks who owns the app's socket
 * (`ProcessLookup`: on macOS the pcblist by the 4-tuple, then proc_pidpath), runs the SAME
 * ordered rules and fallbacks as Linux (model/match.ts: failoverChain → effectiveRoute, or
 * the default for unmatched apps) and dials the destination through that route: a tunnel's
 * dialer (a socket bound to its utun, or the proxy tunnel's SOCKS5/HTTP dialer), the direct
 * dialer (a socket bound to the physical interface, so it cannot loop back into the `rdr`),
 * or none: a blocked flow is reset and reaches nothing.
 *
 * Decisions (docs/platform-macos.md):
 * - Race-free by construction: the decision is taken per connection, before a byte is
 *   forwarded; the app's bytes wait in the kernel (pauseOnConnect) meanwhile.
 * - Unknown owner (the process exited before the lookup, or its socket is not in the list):
 *   blocked by default — a flow a rule would have blocked must never leak because its owner
 *   was quick. `unknownOwner: 'default'` sends it the default route instead, and is honoured
 *   only while no rule can block (pf-flow.ts rulesCanBlock, asked of match.ts: no `block`
 *   target, no `fallback: drop`, every tunnel rule `allow-direct`): otherwise the unknown
 *   owner might be an app a rule blocks, and it is blocked. "Not yet listed" cannot happen
 *   for TCP (the app's pcb exists before its SYN leaves); "already gone" can.
 * - Loops: the router's own outbound sockets must not be redirected again. PF's route-to
 *   rule skips the router's uid (`user != 0`, platform/darwin/pf-flow.ts; a PF tag or the
 *   bound interface alone would not do: see there), and the dialers pin their sockets with
 *   IP_BOUND_IF (direct: the physical interface; a tunnel: its utun;
 *   flow-router-darwin.ts), so the 0/1 + 128/1 routes cannot pull a direct flow into a
 *   tunnel. Root's own processes are therefore not routed per app.
 *   One loop the uid does not stop: PF's `rdr` on lo0 has no user match, so a connection
 *   to one of the host's own addresses (it travels over lo0) is redirected whoever opened
 *   it, the router's redial included. The PF skip table lists the host's addresses when the
 *   host gives them (resources/platform/darwin-flow.ts); as the last guard, a flow whose owner is
 *   the router's own process (`selfPid`) is blocked, which ends such a loop at its second
 *   hop.
 * - Fallbacks: the route follows the tunnels' health (`tunnelUp`) through match.ts. A proxy
 *   tunnel's failed dial (`dialFailureIsDown`) also counts as down for a rule with
 *   `fallback: allow-direct`, which redials direct at once through proxy/fallback.ts, as
 *   that rule's Linux listener does; `rejected` (the proxy refused the destination) never
 *   goes direct.
 * - Original destination: DIOCNATLOOK on PF's `rdr` state; no state → the connection is
 *   reset before any lookup (TransparentProxy's `no-original-dst`).
 * - UDP (`udp`, flow-udp.ts): PF gives each flow of a user process (uid >= 501) a loopback
 *   port of its own and redirects it to the same port number; each flow is decided once,
 *   by the same rules, with its owner from the udp pcblist_n (its app socket's address and
 *   port). A tunnel that carries no UDP (a proxy tunnel: `udp.carries`) counts as down for
 *   it, so its rules' fallbacks decide (allow-direct → direct, block → blocked, failover →
 *   the next rule), and a proxy default route blocks it, as Linux drops non-TCP of proxy
 *   tunnels. Domains of `to:` rules: only the learned names (a datagram carries no SNI).
 * - Same results as Linux beyond the rules: IPv6 of a tunnel route follows `ipv6` (block →
 *   blocked, allow → direct), and a tunnel route to the physical side's own subnet goes
 *   direct (`onLink`; Linux: main's specific routes win).
 * - Tunnel state is read per connection (`tunnelUp`): no decision outlives its connection,
 *   and an established connection is not moved when a tunnel changes state.
 * - Owner lookups are cached per (proto, local address, port), valid only for the same socket
 *   generation (inp_gencnt, unique per socket ever made), so a port reused by another process
 *   is never attributed to the old owner; bounded (platform/darwin/flow-lookup.ts). A TCP
 *   socket connects once, so hits are rare: the cache is there for correctness under port
 *   reuse, not speed (one pcblist_n read per connection stays).
 * - Config edits: `update()`; the next connection is judged by the new rules.
 * - Destination rules (`to:`, model/destinations.ts): the first enabled rule whose program
 *   part and destination part both fit decides (a missing part fits); fallbacks walk the
 *   later rules that fit both. Addresses are the original destination's (DIOCNATLOOK).
 *   Names: when a rule with domains fits the program but not the address (only then), the
 *   router reads the app's first bytes before it dials (peek.ts: TLS SNI, HTTP Host; at
 *   most `peekTimeoutMs`, the bytes go upstream first); without a name there, the names the
 *   `learned` book gives the address (DNS answers) are used. A server-speaks-first protocol
 *   waits out the timeout, then goes by address and learned names only.
 * - `awg exec` (exec-routes.ts): a flow whose owner is a registered pid or descends from one
 *   (its parent chain, `parentOf`, walked per flow) takes the registration's route
 *   (match.ts execRoute) instead of the rules; the loop guard still comes first, and IPv6 and
 *   the LAN are treated as for any flow. Nothing registered: no parent is asked.
 */
import { isIP, type Socket } from 'node:net';
import type { Rule } from '../../config/schema.js';
import type { DestinationSet } from '../../config/lists.js';
import { compileRuleWalk, type RuleWalk } from '../../model/destinations.js';
import {
  compileRules,
  defaultRoute,
  effectiveRoute,
  execRoute,
  type Route,
  type TunnelUp,
} from '../../model/match.js';
import { rulesCanBlock } from '../../platform/darwin/pf-flow.js';
import { fallbackDialer, type FallbackMode } from '../../proxy/fallback.js';
import { TransparentProxy, type TransparentProxyOptions } from '../../proxy/transparent.js';
import { ProxyDialError, type Destination, type Dialer } from '../../proxy/types.js';
import type { ExecRegistry } from './exec-routes.js';
import { peekName } from './peek.js';
import { zeroRuleTraffic, type RuleTraffic } from '../engine/stats.js';
import { UdpRelay, type FlowUdpOptions } from './flow-udp.js';

export interface FlowOwner {
  pid: number;
  path: string;
}

/** One flow as the router sees it: the app's socket and where it was going. */
export interface Flow {
  proto: 'tcp' | 'udp';
  /** the app's end (TCP: the accepted socket's remote address and port; UDP: PF's nat's origin) */
  app: { address: string; port: number };
  dst: Destination;
}

export interface ProcessLookup {
  owner(flow: Flow): FlowOwner | undefined;
}

export interface FlowDialers {
  direct: Dialer;
  /** the tunnel's dialer; undefined when it has none (treated as down) */
  tunnel(name: string): Dialer | undefined;
  /**
   * Does a failed dial of this tunnel mean it is down, so that a rule with `fallback:
   * allow-direct` redials direct at once (proxy/fallback.ts)? True for proxy tunnels, as their
   * allow-direct listener does on Linux; false (default) for WireGuard tunnels, whose
   * fallbacks follow their health only, as the kernel's routes do on Linux.
   */
  dialFailureIsDown?(name: string): boolean;
}

export interface FlowRouterOptions {
  listen: TransparentProxyOptions['listen'];
  rules: readonly Rule[];
  /** `direct` or a tunnel name: where flows of apps no rule matches go */
  default: string;
  tunnelUp: TunnelUp;
  dialers: FlowDialers;
  lookup: ProcessLookup;
  /** the redirected connection's original destination (macOS: DIOCNATLOOK) */
  originalDestination(sock: Socket): Destination;
  /** `default` is honoured only while no enabled rule can block (see the header) */
  unknownOwner?: 'block' | 'default';
  /** the router's own pid (default process.pid): its own sockets coming back are a loop */
  selfPid?: number;
  /**
   * config.ipv6 (default `tunnel`): what IPv6 flows get when their route is a tunnel, as the
   * Linux firewall marks them (model/desired.ts ruleAction → markRules): `tunnel` goes through
   * it, `block` is blocked, `allow` goes direct. Direct and blocked routes are not affected.
   */
  ipv6?: 'tunnel' | 'block' | 'allow';
  /**
   * Is the destination on a network that a more specific route of the physical side covers
   * (its connected subnets)? On Linux such routes in main win over the tunnel tables
   * (`suppress_prefixlength 0`), so a tunnelled app reaches its LAN directly (the kill switch
   * then decides); here such a flow's tunnel route becomes direct. Blocked stays blocked.
   */
  onLink?(host: string): boolean;
  /** `awg exec` registrations (exec-routes.ts): honoured only with `parentOf` */
  execs?: ExecRegistry;
  /** a process's parent pid (macOS: proc_pidinfo PROC_PIDT_SHORTBSDINFO); undefined when gone */
  parentOf?(pid: number): number | undefined;
  /** limits: the local ports a limited class's connections leave from (FlowShaping) */
  shaping?: FlowShaping;
  /** per rule with `to`, by rule name: its destinations (config/load.ts LoadResult.destinations) */
  destinations?: ReadonlyMap<string, DestinationSet>;
  /** names DNS answers gave this address (the learned address book), for flows without SNI/Host */
  learned?(addr: string): readonly string[];
  /** how long to wait for the app's first bytes when a domain rule could decide (default 300 ms) */
  peekTimeoutMs?: number;
  /** UDP per flow (flow-udp.ts), on the same hosts and port as the TCP listener */
  udp?: FlowUdpOptions;
}

/** FlowRouterOptions.peekTimeoutMs's default */
export const PEEK_TIMEOUT_MS = 300;

/**
 * Limits (macOS): PF's dummynet rules tell a limited class's packets by their local port
 * (platform/darwin/pf-shaping.ts), so the router dials a limited flow from a port of its
 * class's range. A process limited at run time (`awg limit PID`), or one descending from it
 * (its parent chain through `parentOf`, at most MAX_PARENT_STEPS), takes its pid's class;
 * otherwise the rule that decided the flow gives it (a rule's class follows its flows
 * wherever its fallbacks send them, as its cgroup does on Linux).
 */
export interface FlowShaping {
  rules: ReadonlyMap<string, readonly [number, number]>;
  pids: ReadonlyMap<number, readonly [number, number]>;
}

/** how far up a process's parents a runtime limit is looked for */
export const MAX_PARENT_STEPS = 64;

export { rulesCanBlock };

/** FlowDecision.rule of a flow the router itself opened (a redirect loop) */
export const LOOP = "(loop: the router's own connection)";

/**
 * One connection the router relays, as the monitor reads it (`awg top`; procs/top/darwin.ts):
 * payload bytes counted where the router copies them (its accepted socket's `bytesRead`:
 * what the app sent; `bytesWritten`: what the router handed back to the app), exact and
 * final once `closed`.
 */
export interface RoutedFlowCount {
  /** unique for the life of the host process (router instance + connection sequence) */
  key: string;
  /** the app's end of the connection (its socket's local address and port) */
  app: { address: string; port: number };
  /** where it was going (DIOCNATLOOK) */
  dst: Destination;
  /** the owner, when it was found */
  pid?: number;
  /** the rule that decided, when one did (not the loop marker) */
  rule?: string;
  /** direct, blocked, or the tunnel's name */
  route: Route;
  /** the router's own socket toward `dst` (direct or a tunnel's; not a proxy tunnel's), once dialled */
  upstream?: { address: string; port: number };
  sent: number;
  received: number;
  closed?: boolean;
}

/** closed flows kept for the monitor's next readings (each reading reports a closed flow once) */
export const CLOSED_FLOWS_KEPT = 4096;

let routerInstances = 0;

export interface FlowDecision {
  route: Route;
  owner?: FlowOwner;
  /** the rule that decided (its name), when one matched */
  rule?: string;
  /** the fallback of the rule whose tunnel the route is (a failover may have moved on) */
  fallback?: FallbackMode;
  /** the registered pid of the `awg exec` whose choice decided */
  exec?: number;
  /** the destination's names the rules were asked with (SNI, Host, or learned) */
  names?: readonly string[];
}

/** what a config edit changes (FlowRouter.update) */
export type FlowPolicy = Pick<
  FlowRouterOptions,
  'rules' | 'default' | 'unknownOwner' | 'ipv6' | 'shaping' | 'destinations'
>;

export class FlowRouter {
  readonly proxy: TransparentProxy;
  private o: FlowRouterOptions;
  private matcher;
  private walk: RuleWalk;
  private unknownToDefault: boolean;
  /** decisions so far, by route (blocked, direct, tunnel names) */
  readonly counts = new Map<string, number>();
  /** per rule that decided: its closed connections' totals, and its open connections */
  private readonly ruleDone = new Map<string, RuleTraffic>();
  private readonly ruleLive = new Map<Socket, string>();
  /** per relayed connection: what the monitor reads (RoutedFlowCount), live and recently closed */
  private readonly instance = ++routerInstances;
  private flowSeq = 0;
  private readonly flowLive = new Map<Socket, Omit<RoutedFlowCount, 'sent' | 'received'>>();
  private readonly flowClosed: RoutedFlowCount[] = [];

  /** the UDP relay, when the router carries UDP (`udp`) */
  readonly udp: UdpRelay | undefined;

  constructor(o: FlowRouterOptions) {
    this.o = o;
    this.matcher = compileRules(o.rules);
    this.walk = compileRuleWalk(o.rules, o.destinations);
    this.unknownToDefault = o.unknownOwner === 'default' && !rulesCanBlock(o.rules);
    this.proxy = new TransparentProxy({
      listen: o.listen,
      dial: () => Promise.reject(new ProxyDialError('blocked', 'no route chosen')),
      originalDestination: o.originalDestination,
      dialFor: (client, dst) => this.dialerFor(client, dst),
    });
    const u = o.udp;
    this.udp = u
      ? new UdpRelay({
          listen: { host: [o.listen.host].flat(), port: o.listen.port },
          origin: u.origin,
          open: u.open,
          decide: (app, dst) => this.decideDatagram(app, dst),
          count: (d, sent, received) => this.countBytes(d, sent, received),
          ...(u.idleMs !== undefined ? { idleMs: u.idleMs } : {}),
          ...(u.maxFlows !== undefined ? { maxFlows: u.maxFlows } : {}),
          ...(u.onError ? { onError: u.onError } : {}),
        })
      : undefined;
  }

  /**
   * The route of one flow now (pure apart from the lookup); IPv6 per `ipv6`, the LAN per
   * `onLink`. `names`: the destination's names (SNI, Host, learned) for rules with domains.
   */
  decide(flow: Flow, names: readonly string[] = []): FlowDecision {
    return this.decideWith(flow, this.o.lookup.owner(flow), names) as FlowDecision;
  }

  /**
   * The route of a new UDP flow (flow-udp.ts): decided once, counted like a connection. A
   * tunnel that carries no UDP counts as down; a failed lookup blocks.
   */
  decideDatagram(app: Flow['app'], dst: { address: string; port: number }): FlowDecision {
    const flow: Flow = { proto: 'udp', app, dst: { host: dst.address, port: dst.port } };
    const carries = this.o.udp?.carries ?? (() => false);
    const up: TunnelUp = (n, r) => carries(n) && this.o.tunnelUp(n, r);
    let d: FlowDecision;
    try {
      const names = this.o.learned?.(dst.address) ?? [];
      d = this.decideWith(flow, this.o.lookup.owner(flow), names, up) as FlowDecision;
    } catch {
      d = { route: 'blocked' };
    }
    this.counts.set(d.route, (this.counts.get(d.route) ?? 0) + 1);
    if (d.rule !== undefined && d.rule !== LOOP) this.ruleTotals(d.rule).connections++;
    return d;
  }

  private ruleTotals(rule: string): RuleTraffic {
    let t = this.ruleDone.get(rule);
    if (!t) this.ruleDone.set(rule, (t = zeroRuleTraffic()));
    return t;
  }

  /** a UDP flow's payload, as the relay passes it, to the rule that decided it */
  private countBytes(d: FlowDecision, sent: number, received: number): void {
    if (d.rule === undefined || d.rule === LOOP) return;
    const t = this.ruleTotals(d.rule);
    t.txBytes += sent;
    t.rxBytes += received;
  }

  /** `names` undefined: 'names' when they could change the decision (the caller peeks) */
  private decideWith(
    flow: Flow,
    owner: FlowOwner | undefined,
    names: readonly string[] | undefined,
    tunnelUp: TunnelUp = this.o.tunnelUp,
  ): FlowDecision | 'names' {
    const d = this.decideFamilyBlind(flow, owner, names, tunnelUp);
    if (d === 'names' || d.route === 'direct' || d.route === 'blocked') return d;
    const host = flow.dst.host.replace(/^\[(.*)\]$/, '$1');
    const v6 = isIP(host) === 6 && !/^::ffff:\d/i.test(host);
    if (v6 && (this.o.ipv6 ?? 'tunnel') !== 'tunnel')
      return { ...d, route: this.o.ipv6 === 'block' ? 'blocked' : 'direct' };
    if (this.o.onLink?.(host)) return { ...d, route: 'direct' };
    return d;
  }

  private decideFamilyBlind(
    flow: Flow,
    owner: FlowOwner | undefined,
    names: readonly string[] | undefined,
    tunnelUp: TunnelUp,
  ): FlowDecision | 'names' {
    if (!owner)
      return {
        route: this.unknownToDefault ? defaultRoute(this.o.default, tunnelUp) : 'blocked',
      };
    if (owner.pid === (this.o.selfPid ?? process.pid))
      return { route: 'blocked', owner, rule: LOOP };
    const reg = this.o.parentOf && this.o.execs?.ancestor(owner.pid, this.o.parentOf);
    const byExec = reg ? execRoute(reg.choice, owner.path, this.matcher, tunnelUp) : undefined;
    if (reg && byExec) {
      const { rule } = byExec;
      return {
        route: byExec.route,
        owner,
        exec: reg.pid,
        ...(rule
          ? {
              rule: rule.name,
              ...(rule.target === byExec.route && rule.fallback ? { fallback: rule.fallback } : {}),
            }
          : {}),
      };
    }
    const addr = flow.dst.host;
    if (names === undefined && this.walk.namesMatter(owner.path, addr)) return 'names';
    const chain = this.walk.chain(owner.path, addr, names);
    const named = names?.length ? { names } : {};
    if (!chain.length) return { route: defaultRoute(this.o.default, tunnelUp), owner, ...named };
    const route = effectiveRoute(chain, tunnelUp);
    // the first entry aiming at `route` chose it: an earlier one with the same target would have
    const chosen = chain.find((r) => r.target === route);
    return {
      route,
      owner,
      rule: chain[0]!.name,
      ...(chosen?.fallback ? { fallback: chosen.fallback } : {}),
      ...named,
    };
  }

  private dialerFor(client: Socket, dst: Destination): Dialer {
    const flow: Flow = {
      proto: 'tcp',
      app: { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 },
      dst,
    };
    let d: FlowDecision | 'names';
    let owner: FlowOwner | undefined;
    try {
      // the owner is looked up at once: it may exit while its first bytes are awaited
      owner = this.o.lookup.owner(flow);
      d = this.decideWith(flow, owner, undefined);
    } catch {
      d = { route: 'blocked' }; // a lookup that failed is an unknown owner, never a pass
    }
    if (d !== 'names') return this.dialerOf(client, dst, d);
    return async (to, opts) => {
      const peeked = await peekName(client, {
        timeoutMs: this.o.peekTimeoutMs ?? PEEK_TIMEOUT_MS,
      });
      if (client.destroyed)
        throw new ProxyDialError('blocked', 'the app closed its connection before it was routed');
      let names: readonly string[] = [];
      let decided: FlowDecision;
      try {
        names = peeked.name !== undefined ? [peeked.name] : (this.o.learned?.(dst.host) ?? []);
        decided = this.decideWith(flow, owner, names) as FlowDecision;
      } catch {
        decided = { route: 'blocked' };
      }
      const up = await this.dialerOf(client, dst, decided)(to, opts);
      // the bytes read for the name go first; the proxy pipes the rest after them
      if (peeked.bytes.length) up.write(peeked.bytes);
      return up;
    };
  }

  private dialerOf(client: Socket, dst: Destination, d: FlowDecision): Dialer {
    this.counts.set(d.route, (this.counts.get(d.route) ?? 0) + 1);
    if (d.rule !== undefined && d.rule !== LOOP) this.countFor(d.rule, client);
    const flow = this.track(client, dst, d);
    return this.recordUpstream(flow, this.chooseDialer(d), this.localPortsFor(d));
  }

  /** the local ports of the flow's limited class, if it has one (FlowShaping) */
  private localPortsFor(d: FlowDecision): readonly [number, number] | undefined {
    const s = this.o.shaping;
    if (!s) return undefined;
    if (s.pids.size && d.owner) {
      let pid: number | undefined = d.owner.pid;
      for (let i = 0; pid !== undefined && pid > 1 && i <= MAX_PARENT_STEPS; i++) {
        const ports = s.pids.get(pid);
        if (ports) return ports;
        pid = this.o.parentOf?.(pid);
      }
    }
    return d.rule !== undefined ? s.rules.get(d.rule) : undefined;
  }

  private chooseDialer(d: FlowDecision): Dialer {
    const blocked =
      (why: string): Dialer =>
      () =>
        Promise.reject(new ProxyDialError('blocked', why));
    if (d.route === 'blocked')
      return blocked(
        d.owner ? `${d.owner.path}: blocked by ${d.rule ?? 'the default route'}` : 'owner unknown',
      );
    if (d.route === 'direct') return this.o.dialers.direct;
    const tunnel = this.o.dialers.tunnel(d.route);
    if (!tunnel) return blocked(`tunnel ${d.route} has no dialer`);
    if (d.fallback === 'allow-direct' && this.o.dialers.dialFailureIsDown?.(d.route))
      return fallbackDialer({
        candidates: [tunnel],
        mode: 'allow-direct',
        direct: this.o.dialers.direct,
      });
    return tunnel;
  }

  /** the connection's record for the monitor: live until its socket closes, then kept with its final counts */
  private track(client: Socket, dst: Destination, d: FlowDecision) {
    const flow: Omit<RoutedFlowCount, 'sent' | 'received'> = {
      key: `${this.instance}.${++this.flowSeq}`,
      app: { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 },
      dst,
      route: d.route,
      ...(d.owner ? { pid: d.owner.pid } : {}),
      ...(d.rule !== undefined && d.rule !== LOOP ? { rule: d.rule } : {}),
    };
    this.flowLive.set(client, flow);
    client.once('close', () => {
      this.flowLive.delete(client);
      this.flowClosed.push({
        ...flow,
        sent: client.bytesRead,
        received: client.bytesWritten,
        closed: true,
      });
      if (this.flowClosed.length > CLOSED_FLOWS_KEPT) this.flowClosed.shift();
    });
    return flow;
  }

  /** the dialled socket's local end (a direct or tunnel dial's TCP socket), for the monitor */
  private recordUpstream(
    flow: Omit<RoutedFlowCount, 'sent' | 'received'>,
    dial: Dialer,
    localPorts: readonly [number, number] | undefined,
  ): Dialer {
    return async (dst, opts) => {
      const up = await dial(dst, localPorts ? { ...opts, localPorts } : opts);
      const s = up as Partial<Socket>;
      if (typeof s.localAddress === 'string' && typeof s.localPort === 'number')
        flow.upstream = { address: s.localAddress, port: s.localPort };
      return up;
    };
  }

  /**
   * Every connection the router relays now, and those that closed lately (the last
   * CLOSED_FLOWS_KEPT), with their payload counts: the monitor's per-flow reading on macOS.
   */
  flows(): RoutedFlowCount[] {
    const out: RoutedFlowCount[] = [];
    for (const [s, f] of this.flowLive)
      out.push({ ...f, sent: s.bytesRead, received: s.bytesWritten });
    for (const f of this.flowClosed) out.push({ ...f });
    return out;
  }

  /** A connection a rule decided (blocked ones too: they count, with no bytes); its bytes count when it closes, and meanwhile live. */
  private countFor(rule: string, client: Socket): void {
    const t = this.ruleTotals(rule);
    t.connections++;
    this.ruleLive.set(client, rule);
    client.once('close', () => {
      this.ruleLive.delete(client);
      t.txBytes += client.bytesRead;
      t.rxBytes += client.bytesWritten;
    });
  }

  /**
   * Per rule (by name, the first rule that matched the flow's owner): its connections so far
   * and their payload bytes, open connections included. macOS's per-rule counters (Linux's
   * come from nft, per packet): the router sees streams, not packets.
   */
  ruleTraffic(): Map<string, RuleTraffic> {
    const out = new Map<string, RuleTraffic>();
    for (const [k, v] of this.ruleDone) out.set(k, { ...v });
    for (const [s, rule] of this.ruleLive) {
      const t = out.get(rule)!;
      t.txBytes += s.bytesRead;
      t.rxBytes += s.bytesWritten;
    }
    return out;
  }

  /**
   * A config edit: rules, default, unknownOwner, ipv6 and the limits' classes replaced at once
   * (as the new config and runtime limits have them); the next connection is judged by them.
   * Established connections keep their route and local port, as a Linux socket keeps the
   * cgroup it was created in.
   */
  update(p: FlowPolicy): void {
    const { unknownOwner: _u, ipv6: _i, shaping: _s, destinations: _d, ...rest } = this.o;
    const o: FlowRouterOptions = {
      ...rest,
      rules: p.rules,
      default: p.default,
      ...(p.unknownOwner ? { unknownOwner: p.unknownOwner } : {}),
      ...(p.ipv6 ? { ipv6: p.ipv6 } : {}),
      ...(p.shaping ? { shaping: p.shaping } : {}),
      ...(p.destinations ? { destinations: p.destinations } : {}),
    };
    const matcher = compileRules(o.rules); // throws on a bad rule before anything changes
    const walk = compileRuleWalk(o.rules, o.destinations);
    this.o = o;
    this.matcher = matcher;
    this.walk = walk;
    this.unknownToDefault = o.unknownOwner === 'default' && !rulesCanBlock(o.rules);
  }

  /** TCP, then UDP on the port TCP got (the PF rules name one port for both) */
  async start(): ReturnType<TransparentProxy['start']> {
    const a = await this.proxy.start();
    if (this.udp)
      try {
        await this.udp.start(a.port);
      } catch (e) {
        await this.proxy.close();
        throw e;
      }
    return a;
  }

  async close(): Promise<void> {
    await Promise.all([this.proxy.close(), this.udp?.close()]);
  }
}
