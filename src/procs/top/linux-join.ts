/**
 * The Linux reading's join (pure): sockets from sock_diag, the sockets freed since the last
 * reading (the destroy groups) and conntrack entries become per-flow readings.
 *
 * - TCP: one flow per socket that carries data (not LISTEN, TIME_WAIT or a request socket);
 *   its counts are tcp_info's (payload; ≤ 2 bytes of SYN/FIN sequence space included). A
 *   freed socket's final counts come once, `closed`, under the same key.
 * - UDP: sockets have no byte counts; the conntrack entry of the flow has them (whole IP
 *   packets): payload = bytes − packets × (IP header 20 | 40 + UDP header 8). A connected
 *   socket takes the entry of its exact 4-tuple; an unconnected one the entries of its local
 *   port whose local address is ours (a socket bound to one address: that address). The
 *   socket's view of a flow is the entry's ORIGINAL tuple when the flow left from here (the
 *   NAT of a tunnel or of a DNS redirect changes only the reply tuple) and the REPLY tuple
 *   when it arrived here (after any DNAT). Both views of one entry can be ours (loopback).
 * - conntrack entries no socket of ours took (forwarded traffic, a flow whose socket closed
 *   before a reading saw it) are flows without a pid: unattributed. For TCP their payload is
 *   bytes − packets × (IP header + 20): TCP options count as payload there.
 * - A view once taken by a socket keeps that socket's owner for the entry's life (a UDP flow
 *   outlives its socket by the conntrack timeout; a TCP connection's entry outlives its socket
 *   by TIME_WAIT). An entry destroyed since the last reading (with its final counters) is a
 *   `closed` flow, under the key its live flow had.
 */
import type { CtEntry } from '../../native/conntrack.js';
import { TCP_STATE, type InetSocket } from '../../native/sockdiag.js';
import type { FlowEnd, FlowProto, FlowReading } from './reading.js';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** who a socket belongs to, as far as it is known */
export interface SocketOwner {
  pid?: number;
  uid?: number;
  cgroup?: string;
}

export interface JoinInput {
  tcp: readonly InetSocket[];
  udp: readonly InetSocket[];
  /** sockets freed since the last join, in the order the kernel announced them */
  destroyed: readonly InetSocket[];
  /** undefined: conntrack could not be read (UDP counts and unattributed flows missing) */
  conntrack: readonly CtEntry[] | undefined;
  /** conntrack entries destroyed since the last join, with their final counters */
  ctEnded?: readonly CtEntry[];
  /** an address of this namespace (loopback included) */
  isLocal(addr: string): boolean;
  /** the owner of a live socket (pid through its inode, cgroup through its cgroup id) */
  owner(s: InetSocket): SocketOwner;
}

export interface JoinResult {
  flows: FlowReading[];
  /** UDP flows whose conntrack entry has no counters (made while accounting was off) */
  uncounted: number;
}

/** IPv4-mapped IPv6 text → IPv4 (the reading shows such flows as IPv4) */
export function canonAddr(a: string): string {
  return a.charCodeAt(0) === 58 /* : */ && a.startsWith('::ffff:') && a.includes('.')
    ? a.slice(7)
    : a;
}

const familyOf = (addr: string): 4 | 6 => (addr.includes(':') ? 6 : 4);
const endText = (addr: string, port: number): string =>
  addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
const tupleKey = (proto: number, la: string, lp: number, ra: string, rp: number): string =>
  `${proto} ${la} ${lp} ${ra} ${rp}`;

/** the key of a socket's 4-tuple as the join indexes conntrack views (local → remote) */
export function socketTupleKey(s: InetSocket): string {
  return tupleKey(
    s.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP,
    canonAddr(s.src),
    s.sport,
    canonAddr(s.dst),
    s.dport,
  );
}

/** payload of `bytes` in `packets` IP packets of a flow, headers of `family` and `proto` off */
export function payloadOf(bytes: number, packets: number, family: 4 | 6, proto: FlowProto): number {
  const hdr = (family === 4 ? 20 : 40) + (proto === 'udp' ? 8 : 20);
  return Math.max(0, bytes - packets * hdr);
}

/** states of a TCP socket that is not a flow of its own */
const NOT_FLOW = new Set<number>([
  TCP_STATE.LISTEN,
  TCP_STATE.TIME_WAIT,
  TCP_STATE.SYN_RECV,
  TCP_STATE.NEW_SYN_RECV,
]);

type Dir = 'out' | 'in';

/** an entry seen from one end: `out` = it left from here (the orig tuple is ours) */
interface CtView {
  entry: CtEntry;
  /** `ident|dir` */
  id: string;
  dir: Dir;
}

interface Remembered {
  owner: SocketOwner;
  dir: Dir;
}

const TCP_OUT: Remembered = { owner: {}, dir: 'out' };
const TCP_IN: Remembered = { owner: {}, dir: 'in' };

/** how many joins a socket's owner is kept after the socket left the dump (its close announced late) */
const OWNER_GRACE = 3;

function ctIdent(e: CtEntry): string {
  const o = e.orig;
  return `${e.proto} ${o.src} ${o.sport} ${o.dst} ${o.dport} ${e.zone ?? 0}#${e.id ?? ''}`;
}

const viewKey = (e: CtEntry, dir: Dir): string =>
  dir === 'out'
    ? tupleKey(e.proto, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport)
    : tupleKey(e.proto, e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport);

function protoName(n: number): FlowProto | undefined {
  return n === IPPROTO_TCP ? 'tcp' : n === IPPROTO_UDP ? 'udp' : undefined;
}

/** what a socket's flows keep from one join to the next (its text is made once) */
interface SocketMemo {
  sport: number;
  dport: number;
  local: FlowEnd;
  remote: FlowEnd;
  family: 4 | 6;
  /** socketTupleKey */
  tuple: string;
  /** the flow key */
  key: string;
  owner: SocketOwner;
  /** joins since the socket was last seen */
  age: number;
}

/** per conntrack entry object: its identity, its two views and their tuple keys */
interface CtMemo {
  ident: string;
  out: string;
  in: string;
  vOut: CtView;
  vIn: CtView;
}

export class FlowJoiner {
  /** socket cookie → what its flows keep; kept a few joins after the socket left the dump */
  private sockets = new Map<string, SocketMemo>();
  private readonly ctMemo = new WeakMap<CtEntry, CtMemo>();
  /** conntrack view (`ident|dir`) → the socket owner that took it */
  private taken = new Map<string, Remembered>();

  /**
   * Does a read need `e`'s counters? Not for another protocol, nor for a TCP entry that a
   * local socket has (or had) — `tcpTuples` holds the socketTupleKey of the live TCP sockets.
   */
  countsNeeded(e: CtEntry, tcpTuples: ReadonlySet<string>): boolean {
    if (e.proto === IPPROTO_UDP) return true;
    if (e.proto !== IPPROTO_TCP) return false;
    const m = this.ctKeys(e);
    if (tcpTuples.has(m.out) || tcpTuples.has(m.in)) return false;
    return !this.taken.has(m.vOut.id) && !this.taken.has(m.vIn.id);
  }

  /** the socketTupleKey of each socket (made once per socket) */
  tuples(sockets: readonly InetSocket[]): Set<string> {
    const out = new Set<string>();
    for (const s of sockets) out.add(this.statics(s).tuple);
    return out;
  }

  private ctKeys(e: CtEntry): CtMemo {
    let m = this.ctMemo.get(e);
    if (!m) {
      const ident = ctIdent(e);
      m = {
        ident,
        out: viewKey(e, 'out'),
        in: viewKey(e, 'in'),
        vOut: { entry: e, id: `${ident}|out`, dir: 'out' },
        vIn: { entry: e, id: `${ident}|in`, dir: 'in' },
      };
      this.ctMemo.set(e, m);
    }
    return m;
  }

  /** the memo of a socket seen now (its owner asked again) */
  private memo(s: InetSocket, owner: (s: InetSocket) => SocketOwner): SocketMemo {
    const m = this.statics(s);
    m.age = 0;
    const o = owner(s);
    if (o.pid !== m.owner.pid || o.uid !== m.owner.uid || o.cgroup !== m.owner.cgroup) m.owner = o;
    return m;
  }

  private statics(s: InetSocket): SocketMemo {
    let m = this.sockets.get(s.cookie);
    if (!m || m.sport !== s.sport || m.dport !== s.dport) {
      const la = canonAddr(s.src);
      const ra = canonAddr(s.dst);
      const family = familyOf(la);
      const proto = s.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
      m = {
        sport: s.sport,
        dport: s.dport,
        local: { addr: la, port: s.sport },
        remote: { addr: ra, port: s.dport },
        family,
        tuple: tupleKey(proto, la, s.sport, ra, s.dport),
        key: `${s.proto}/${family}/${endText(la, s.sport)}/${endText(ra, s.dport)}/${s.cookie}`,
        owner: {},
        age: 0,
      };
      this.sockets.set(s.cookie, m);
    }
    return m;
  }

  join(input: JoinInput): JoinResult {
    const flows: FlowReading[] = [];
    let uncounted = 0;
    const ct = input.conntrack ?? [];

    // index the entries by the 4-tuple each end sees, and by local port for unconnected sockets
    const byTuple = new Map<string, CtView>();
    const byPort = new Map<number, CtView[]>();
    for (let i = 0; i < ct.length; i++) {
      const e = ct[i]!;
      const m = this.ctKeys(e);
      for (const dir of ['out', 'in'] as const) {
        const v = dir === 'out' ? m.vOut : m.vIn;
        byTuple.set(dir === 'out' ? m.out : m.in, v);
        if (e.proto !== IPPROTO_UDP) continue;
        const t = dir === 'out' ? e.orig : e.reply;
        if (!input.isLocal(t.src)) continue;
        const list = byPort.get(t.sport);
        if (list) list.push(v);
        else byPort.set(t.sport, [v]);
      }
    }
    /** views a socket took now */
    const used = new Set<string>();
    const nextTaken = new Map<string, Remembered>();

    for (const m of this.sockets.values()) m.age++;

    // TCP: counts from tcp_info; conntrack only for the mark
    for (const s of input.tcp) {
      if (NOT_FLOW.has(s.state) || s.bytesAcked === undefined) {
        const v = byTuple.get(socketTupleKey(s));
        if (v) {
          used.add(v.id);
          nextTaken.set(v.id, v.dir === 'out' ? TCP_OUT : TCP_IN);
        }
        continue;
      }
      const m = this.memo(s, input.owner);
      const v = byTuple.get(m.tuple);
      if (v) {
        used.add(v.id);
        nextTaken.set(v.id, v.dir === 'out' ? TCP_OUT : TCP_IN);
      }
      flows.push(tcpFlow(s, m, v?.entry.mark, false));
    }
    for (const s of input.destroyed) {
      // a listener (no peer) carried no data of its own
      if (s.proto !== 'tcp' || s.bytesAcked === undefined || s.dport === 0) continue;
      const v = byTuple.get(socketTupleKey(s));
      if (v) {
        used.add(v.id);
        nextTaken.set(v.id, v.dir === 'out' ? TCP_OUT : TCP_IN);
      }
      // the owner known while it lived, else what the notification says (no pid: it has no file)
      const m = this.sockets.get(s.cookie) ?? this.memo(s, () => ({ uid: s.uid }));
      this.sockets.delete(s.cookie);
      flows.push(tcpFlow(s, m, v?.entry.mark, true));
    }

    // UDP: counts from the conntrack entries the sockets take
    const take = (v: CtView, owner: SocketOwner): void => {
      used.add(v.id);
      nextTaken.set(v.id, { owner, dir: v.dir });
      if (!v.entry.origCounters || !v.entry.replyCounters) uncounted++;
      flows.push(ctFlow(v.entry, v.dir, 'udp', owner, false));
    };
    const unconnected: InetSocket[] = [];
    for (const s of input.udp) {
      if (s.dport === 0) {
        unconnected.push(s);
        continue;
      }
      const m = this.memo(s, input.owner);
      const v = byTuple.get(m.tuple);
      if (v && !used.has(v.id)) {
        take(v, m.owner);
        continue;
      }
      // connected, no entry (conntrack off in this namespace, or not yet confirmed): no counts
      flows.push({
        key: m.key,
        proto: 'udp',
        family: m.family,
        local: m.local,
        remote: m.remote,
        ...ownerFields(m.owner),
        sent: 0,
        received: 0,
      });
    }
    for (const s of unconnected) {
      const m = this.memo(s, input.owner);
      const la = m.local.addr;
      const wildcard = la === '0.0.0.0' || la === '::';
      for (const v of byPort.get(s.sport) ?? []) {
        if (used.has(v.id)) continue;
        const t = v.dir === 'out' ? v.entry.orig : v.entry.reply;
        // an AF_INET socket takes IPv4 entries only; an AF_INET6 one bound to `::` both
        if (s.family === 4 && v.entry.family !== 4) continue;
        if (!wildcard && t.src !== la) continue;
        take(v, m.owner);
      }
    }

    // views no live socket took: a remembered owner's, else (no view of the entry ours) unattributed
    for (let i = 0; i < ct.length; i++) {
      const e = ct[i]!;
      const proto = protoName(e.proto);
      if (proto) uncounted += this.carry(e, proto, used, nextTaken, input.isLocal, flows, false);
    }
    // entries destroyed since the last join: final counts, under the key of their live flow
    for (const e of input.ctEnded ?? []) {
      const proto = protoName(e.proto);
      if (proto) this.carry(e, proto, used, undefined, input.isLocal, flows, true);
    }
    if (input.conntrack !== undefined) this.taken = nextTaken;
    for (const [c, m] of this.sockets) if (m.age > OWNER_GRACE) this.sockets.delete(c);
    return { flows, uncounted };
  }

  /**
   * The flows of an entry's views no socket took now: a remembered owner's view (UDP: a flow;
   * TCP: none, its socket counted it), or the unattributed flow when no view is ours. Returns
   * how many UDP flows it made without counters.
   */
  private carry(
    e: CtEntry,
    proto: FlowProto,
    used: ReadonlySet<string>,
    nextTaken: Map<string, Remembered> | undefined,
    isLocal: (a: string) => boolean,
    flows: FlowReading[],
    closed: boolean,
  ): number {
    const m = this.ctKeys(e);
    let ours = false;
    let uncounted = 0;
    for (const v of [m.vOut, m.vIn]) {
      if (used.has(v.id)) {
        ours = true;
        continue;
      }
      const r = this.taken.get(v.id);
      if (!r) continue;
      ours = true;
      nextTaken?.set(v.id, r);
      if (proto !== 'udp') continue;
      flows.push(ctFlow(e, r.dir, proto, r.owner, closed));
      if (!e.origCounters || !e.replyCounters) uncounted++;
    }
    if (!ours) {
      // which end is here: an entry that arrived at a local address is seen from its destination
      const inbound = !isLocal(e.orig.src) && isLocal(e.reply.src);
      flows.push(ctFlow(e, inbound ? 'in' : 'out', proto, {}, closed));
    }
    return uncounted;
  }
}

function ownerFields(o: SocketOwner): Pick<FlowReading, 'pid' | 'uid' | 'cgroup'> {
  const out: Pick<FlowReading, 'pid' | 'uid' | 'cgroup'> = {};
  if (o.pid !== undefined) out.pid = o.pid;
  if (o.uid !== undefined) out.uid = o.uid;
  if (o.cgroup !== undefined) out.cgroup = o.cgroup;
  return out;
}

function tcpFlow(
  s: InetSocket,
  m: SocketMemo,
  mark: number | undefined,
  closed: boolean,
): FlowReading {
  const f: FlowReading = {
    key: m.key,
    proto: 'tcp',
    family: m.family,
    local: m.local,
    remote: m.remote,
    uid: m.owner.uid ?? s.uid,
    sent: s.bytesAcked ?? 0,
    received: s.bytesReceived ?? 0,
  };
  if (m.owner.pid !== undefined) f.pid = m.owner.pid;
  if (m.owner.cgroup !== undefined) f.cgroup = m.owner.cgroup;
  if (mark !== undefined) f.mark = mark;
  if (closed) f.closed = true;
  return f;
}

function ctFlow(
  e: CtEntry,
  dir: Dir,
  proto: FlowProto,
  owner: SocketOwner,
  closed: boolean,
): FlowReading {
  const t = dir === 'out' ? e.orig : e.reply;
  const local: FlowEnd = { addr: t.src, port: t.sport };
  const remote: FlowEnd = { addr: t.dst, port: t.dport };
  const out = dir === 'out' ? e.origCounters : e.replyCounters;
  const back = dir === 'out' ? e.replyCounters : e.origCounters;
  const family = e.family;
  const id = e.id !== undefined ? `ct${e.id.toString(16)}` : 'ct';
  const f: FlowReading = {
    key: `${proto}/${family}/${endText(local.addr, local.port)}/${endText(remote.addr, remote.port)}/${id}`,
    proto,
    family,
    local,
    remote,
    ...ownerFields(owner),
    sent: out ? payloadOf(out.bytes, out.packets, family, proto) : 0,
    received: back ? payloadOf(back.bytes, back.packets, family, proto) : 0,
  };
  if (e.mark !== undefined) f.mark = e.mark;
  if (closed) f.closed = true;
  return f;
}
