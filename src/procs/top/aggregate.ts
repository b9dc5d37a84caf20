/**
 * The monitor: successive readings of the kernel's per-flow counters (reading.ts) in, one
 * TopDocument (document.ts) per reading out: per process, rule and tunnel, the rates over the
 * last interval, the totals since the monitor started and the connections open now. Pure: the
 * readings and the routing context come in, the clock is given.
 *
 * Counting, per flow (its key names one socket or conntrack entry for its life):
 * - the first reading is the baseline: what flows carried before the monitor started is not
 *   counted; a flow first seen later counts from zero (it began after the previous reading);
 * - each reading adds what the flow's cumulative counts grew by; counts that went backwards are
 *   a new flow on a reused key and count from zero;
 * - a closed flow's final counts are counted once: it is remembered (a tombstone) so a reader
 *   that reports it again adds nothing;
 * - a flow keeps the process (and cgroup) it was first seen with when a later reading has none:
 *   a socket its process closed with data still queued is in no file table until it is freed;
 * - flows not seen, and processes without connections or traffic, for `forgetAfterMs` are
 *   forgotten; at most `maxFlows` flows are remembered (the oldest go first), so memory stays
 *   bounded however many connections come and go.
 * Totals per process, rule and route add up these deltas, so a flow keeps what it counted
 * under the rule and route it had at the time.
 */
import type { Route } from '../../model/match.js';
import type { FlowReading, ProcessInfo, Reading } from './reading.js';
import type { TopConnection, TopDocument, TopProcess, TopRule, TopTunnel } from './document.js';
import { flowRoute, groupOf, ruleRows, type Group, type TopContext } from './routing.js';

export interface MonitorOptions {
  /** wall clock, ms since the epoch (the document's `at` and `since`) */
  clock?: () => number;
  /** forget flows unseen and processes idle this long (default 60 s) */
  forgetAfterMs?: number;
  /** at most this many flows remembered (default 100 000) */
  maxFlows?: number;
}

export interface UpdateOptions {
  /** list every connection in the document (`awg top --json`) */
  connections?: boolean;
}

interface FlowState {
  /** the kernel's cumulative counts at the last reading */
  sent: number;
  received: number;
  /** counted since the monitor started */
  totalSent: number;
  totalReceived: number;
  lastSeen: number;
  /** wall clock when it was first seen (a new flow on a reused key starts again) */
  started: number;
  closed: boolean;
  /** the process and cgroup it was first seen with */
  pid?: number | undefined;
  cgroup?: string | undefined;
}

interface ProcState {
  info: ProcessInfo;
  sent: number;
  received: number;
  lastActive: number;
}

/** counters being summed for one row during an update */
interface Sum {
  sent: number;
  received: number;
  dSent: number;
  dReceived: number;
  connections: number;
}

const sum = (): Sum => ({ sent: 0, received: 0, dSent: 0, dReceived: 0, connections: 0 });

/** totals since the start, kept per row key across readings */
type Totals = Map<string, { sent: number; received: number }>;

export class Monitor {
  private readonly flows = new Map<string, FlowState>();
  private readonly procs = new Map<number, ProcState>();
  private readonly ruleTotals: Totals = new Map();
  private readonly routeTotals: Totals = new Map();
  private readonly unattributed = { sent: 0, received: 0 };
  private readonly total = { sent: 0, received: 0 };
  private prevAt: number | undefined;
  private since: number | undefined;
  private readonly clock: () => number;
  private readonly forgetAfterMs: number;
  private readonly maxFlows: number;

  constructor(o: MonitorOptions = {}) {
    this.clock = o.clock ?? Date.now;
    this.forgetAfterMs = o.forgetAfterMs ?? 60_000;
    this.maxFlows = o.maxFlows ?? 100_000;
  }

  /** how many flows and processes it remembers (bounded: see the file comment) */
  get size(): { flows: number; processes: number } {
    return { flows: this.flows.size, processes: this.procs.size };
  }

  update(r: Reading, ctx: TopContext, o: UpdateOptions = {}): TopDocument {
    const now = this.clock();
    this.since ??= now;
    const baseline = this.prevAt === undefined;
    // readings carry a fractional monotonic clock: the rates use it, the document rounds it
    const span = baseline ? 0 : Math.max(0, r.at - this.prevAt!);
    const intervalMs = Math.round(span);
    this.prevAt = r.at;
    const rate = (d: number) => (span > 0 ? Math.round((d * 1000) / span) : 0);

    const procSums = new Map<number, Sum>();
    const procRoutes = new Map<number, Set<Route>>();
    const ruleSums = new Map<string, Sum>();
    const routeSums = new Map<string, Sum>();
    const unattributed = sum();
    const total = sum();
    // a process that exited is named by what was read of it while it ran
    const infoOf = (pid: number): ProcessInfo | undefined => {
      const fresh = r.processes.get(pid);
      const known = this.procs.get(pid)?.info;
      return fresh && (fresh.exe !== undefined || !known) ? fresh : (known ?? fresh);
    };
    const groups = new Map<number, Group>();
    const groupOfPid = (pid: number): Group => {
      let g = groups.get(pid);
      if (!g) {
        const info = infoOf(pid);
        g = groupOf(ctx, info?.cgroup, info?.exe);
        groups.set(pid, g);
      }
      return g;
    };
    const into = <K>(m: Map<K, Sum>, k: K): Sum => {
      let s = m.get(k);
      if (!s) m.set(k, (s = sum()));
      return s;
    };

    const connections: TopConnection[] = [];
    for (const f of r.flows) {
      const [dSent, dRecv, st] = this.count(f, r.at, now, baseline);
      // a socket keeps the process it was first seen with (an orphaned socket, still sending
      // after its process closed it, is in no file table)
      const pid = f.pid ?? st.pid;
      st.pid = pid;
      const cgroup = f.cgroup ?? st.cgroup;
      st.cgroup = cgroup;
      // the platform's own decision for this flow where it has one (the macOS flow router),
      // else the rule of the socket's cgroup and the conntrack mark
      const group =
        f.route !== undefined
          ? { ...(f.rule !== undefined ? { rule: f.rule } : {}), route: f.route }
          : cgroup !== undefined
            ? groupOf(ctx, cgroup, pid !== undefined ? infoOf(pid)?.exe : undefined)
            : pid !== undefined
              ? groupOfPid(pid)
              : groupOf(ctx, undefined);
      const route = f.route ?? flowRoute(ctx, f.mark, group);
      // the process's row takes the rule the platform named for its flows
      if (f.route !== undefined && pid !== undefined && !groups.has(pid)) groups.set(pid, group);
      const open = f.closed ? 0 : 1;
      const rows: Sum[] = [total, into(routeSums, route)];
      if (group.rule !== undefined) rows.push(into(ruleSums, group.rule));
      if (pid === undefined) rows.push(unattributed);
      else {
        rows.push(into(procSums, pid));
        if (open) {
          let set = procRoutes.get(pid);
          if (!set) procRoutes.set(pid, (set = new Set()));
          set.add(route);
        }
      }
      for (const s of rows) {
        s.dSent += dSent;
        s.dReceived += dRecv;
        s.connections += open;
      }
      if (o.connections)
        connections.push({
          id: f.key,
          proto: f.proto,
          family: f.family,
          local: { addr: f.local.addr, port: f.local.port },
          remote: { addr: f.remote.addr, port: f.remote.port },
          ...(pid !== undefined ? { pid } : {}),
          ...(group.rule !== undefined ? { rule: group.rule } : {}),
          route,
          upload: rate(dSent),
          download: rate(dRecv),
          sent: st.totalSent,
          received: st.totalReceived,
          started: new Date(st.started).toISOString(),
          ...(f.closed ? { closed: true } : {}),
        });
    }

    // processes: the totals of those seen now, then every one remembered
    for (const [pid, s] of procSums) {
      const info = infoOf(pid) ?? { pid, name: '?' };
      let p = this.procs.get(pid);
      if (!p) this.procs.set(pid, (p = { info, sent: 0, received: 0, lastActive: r.at }));
      p.info = info;
      p.sent += s.dSent;
      p.received += s.dReceived;
      if (s.connections > 0 || s.dSent > 0 || s.dReceived > 0) p.lastActive = r.at;
    }
    const accumulate = (t: Totals, m: Map<string, Sum>) => {
      for (const [k, s] of m) {
        let v = t.get(k);
        if (!v) t.set(k, (v = { sent: 0, received: 0 }));
        v.sent += s.dSent;
        v.received += s.dReceived;
      }
    };
    accumulate(this.ruleTotals, ruleSums);
    accumulate(this.routeTotals, routeSums);
    this.unattributed.sent += unattributed.dSent;
    this.unattributed.received += unattributed.dReceived;
    this.total.sent += total.dSent;
    this.total.received += total.dReceived;
    this.forget(r.at);

    const row = (s: Sum | undefined, t: { sent: number; received: number } | undefined) => ({
      upload: rate(s?.dSent ?? 0),
      download: rate(s?.dReceived ?? 0),
      sent: t?.sent ?? 0,
      received: t?.received ?? 0,
      connections: s?.connections ?? 0,
    });

    const processes: TopProcess[] = [...this.procs.entries()]
      .sort(([a], [b]) => a - b)
      .map(([pid, p]) => {
        const g = groupOfPid(pid);
        const routes = procRoutes.get(pid);
        const limit = ctx.limitOf?.(pid);
        return {
          pid,
          name: p.info.name,
          ...(p.info.exe !== undefined ? { exe: p.info.exe } : {}),
          ...(p.info.uid !== undefined ? { uid: p.info.uid } : {}),
          ...(g.rule !== undefined ? { rule: g.rule } : {}),
          route: routes && routes.size === 1 ? [...routes][0]! : g.route,
          ...row(procSums.get(pid), p),
          ...(limit ? { limit } : {}),
        };
      });

    const count = new Map<string, number>();
    for (const p of processes) if (p.rule) count.set(p.rule, (count.get(p.rule) ?? 0) + 1);
    const configured = ruleRows(ctx);
    const known = new Set(configured.map((x) => x.name));
    const others = [...new Set([...ruleSums.keys(), ...count.keys()])]
      .filter((n) => !known.has(n))
      .sort();
    const rules: TopRule[] = [
      ...configured,
      ...others.map((name) => {
        const exec = name.startsWith('exec:') ? name.slice('exec:'.length) : undefined;
        const g = groupOf(ctx, `${ctx.cgroupRoot}/${exec !== undefined ? `_exec-${exec}` : name}`);
        return { name, ...(g.target !== undefined ? { target: g.target } : {}), route: g.route };
      }),
    ].map((x) => ({
      ...x,
      processes: count.get(x.name) ?? 0,
      ...row(ruleSums.get(x.name), this.ruleTotals.get(x.name)),
    }));
    const tunnels: TopTunnel[] = ctx.tunnels.map((name) => ({
      name,
      ...row(routeSums.get(name), this.routeTotals.get(name)),
    }));

    return {
      at: new Date(now).toISOString(),
      since: new Date(this.since).toISOString(),
      intervalMs,
      processes,
      rules,
      tunnels,
      direct: row(routeSums.get('direct'), this.routeTotals.get('direct')),
      unattributed: row(unattributed, this.unattributed),
      total: row(total, this.total),
      connections,
      warnings: [...r.warnings],
    };
  }

  /** what `f` adds now: [sent, received] and its state after */
  private count(
    f: FlowReading,
    at: number,
    wall: number,
    baseline: boolean,
  ): [number, number, FlowState] {
    let st = this.flows.get(f.key);
    let dSent: number;
    let dRecv: number;
    if (!st) {
      // new: counted from zero, unless it was there before the monitor started
      dSent = baseline ? 0 : f.sent;
      dRecv = baseline ? 0 : f.received;
      st = {
        sent: 0,
        received: 0,
        totalSent: 0,
        totalReceived: 0,
        lastSeen: at,
        started: wall,
        closed: false,
      };
      this.flows.set(f.key, st);
    } else if (f.sent < st.sent || f.received < st.received) {
      // counts went backwards: another socket on the same key, counted from zero
      dSent = f.sent;
      dRecv = f.received;
      st.started = wall;
    } else {
      dSent = f.sent - st.sent;
      dRecv = f.received - st.received;
    }
    st.sent = f.sent;
    st.received = f.received;
    st.totalSent += dSent;
    st.totalReceived += dRecv;
    st.lastSeen = at;
    st.closed = f.closed === true;
    return [dSent, dRecv, st];
  }

  private forget(at: number): void {
    const cutoff = at - this.forgetAfterMs;
    for (const [k, st] of this.flows) if (st.lastSeen < cutoff) this.flows.delete(k);
    if (this.flows.size > this.maxFlows) {
      // the oldest first; what this reading saw goes last
      const old = [...this.flows.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
      for (const [k] of old.slice(0, this.flows.size - this.maxFlows)) this.flows.delete(k);
    }
    for (const [pid, p] of this.procs) if (p.lastActive < cutoff) this.procs.delete(pid);
  }
}

/**
 * `cur` with its rates over the span since `prev`, an earlier document of the same monitor:
 * what a subscriber that takes only every n-th document sees (the daemon's Top call at a longer
 * interval than the shared monitor's). The totals make the rates: a row `prev` lacks counts
 * from zero. Documents of different monitors (another `since`) are left as they are.
 */
export function rerate(prev: TopDocument, cur: TopDocument): TopDocument {
  const span = Date.parse(cur.at) - Date.parse(prev.at);
  if (prev.since !== cur.since || !(span > 0)) return cur;
  type Counted = { sent: number; received: number };
  const rates = <T extends Counted>(c: T, p: Counted | undefined): T => ({
    ...c,
    upload: Math.max(0, Math.round(((c.sent - (p?.sent ?? 0)) * 1000) / span)),
    download: Math.max(0, Math.round(((c.received - (p?.received ?? 0)) * 1000) / span)),
  });
  const rows = <T extends Counted>(cs: T[], ps: T[], key: (x: T) => string | number): T[] => {
    const before = new Map(ps.map((p) => [key(p), p]));
    return cs.map((c) => rates(c, before.get(key(c))));
  };
  return {
    ...cur,
    intervalMs: span,
    processes: rows(cur.processes, prev.processes, (p) => p.pid),
    rules: rows(cur.rules, prev.rules, (r) => r.name),
    tunnels: rows(cur.tunnels, prev.tunnels, (t) => t.name),
    direct: rates(cur.direct, prev.direct),
    unattributed: rates(cur.unattributed, prev.unattributed),
    total: rates(cur.total, prev.total),
    connections: rows(cur.connections, prev.connections, (c) => c.id),
  };
}
