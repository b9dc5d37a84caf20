/**
 * The Linux reading's join (pure): sockets from sock_diag, the sockets freed since the last
 * reading (the destroy groups) and conntrack entries become per-flow readings.
 *
 * - TCP: one flow per socket that carries data (not LISTEN, TIME_WAIT or a request socket);
 *   its counts are tcp_info's (payload, ≤ 2 bytes of SYN/FIN sequence space included). A
 *   freed socket's final counts come once, `closed`, under the same key.
 * - UDP: sockets have no byte counts; the conntrack entry of the flow has them (whole IP
 *   packets): payload = bytes − packets × (IP header 20 | 40 + UDP header 8). A connected
 *   socket takes the entry of its exact 4-tuple; an unconnected one the entries of its local
 *   port whose local address is ours (a socket bound to one address: that address). The
 *   socket's view of a flow is the entry's ORIGINAL tuple when the flow left from here (the
 *   NAT of a tunnel or of a DNS redirect changes only the reply tuple) and the REPLY tuple
 *   when it arrived here (after any DNAT).
 * - conntrack entries no socket of ours ever took (forwarded traffic, a flow whose socket
 *   closed before the first reading saw it) are flows without a pid: unattributed. For TCP
 *   their payload is bytes − packets × (IP header + 20): TCP options count as payload there.
 * - An entry that was once taken by a socket keeps that socket's owner for its life (a UDP
 *   flow outlives its socket by the conntrack timeout; a TCP socket in TIME_WAIT is no flow).
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
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

const familyOf = (addr: string): 4 | 6 => (addr.includes(':') ? 6 : 4);
const endText = (e: FlowEnd): string =>
  e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`;
const tupleKey = (proto: number, l: FlowEnd, r: FlowEnd): string =>
  `${proto} ${l.addr} ${l.port} ${r.addr} ${r.port}`;

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

/** a conntrack entry seen from one end: `out` = it left from here (orig tuple is ours) */
interface CtView {
  entry: CtEntry;
  ident: string;
  dir: 'out' | 'in';
  local: FlowEnd;
  remote: FlowEnd;
}

interface Remembered {
  owner: SocketOwner;
  local: FlowEnd;
  remote: FlowEnd;
  dir: 'out' | 'in';
}

/** how many joins a socket's owner is kept after the socket left the dump (its close announced late) */
const OWNER_GRACE = 3;

function ctIdent(e: CtEntry): string {
  const o = e.orig;
  return `${e.proto} ${o.src} ${o.sport} ${o.dst} ${o.dport}${e.id !== undefined ? ` #${e.id}` : ''}`;
}

function viewsOf(e: CtEntry, ident: string): [CtView, CtView] {
  return [
    {
      entry: e,
      ident,
      dir: 'out',
      local: { addr: e.orig.src, port: e.orig.sport },
      remote: { addr: e.orig.dst, port: e.orig.dport },
    },
    {
      entry: e,
      ident,
      dir: 'in',
      local: { addr: e.reply.src, port: e.reply.sport },
      remote: { addr: e.reply.dst, port: e.reply.dport },
    },
  ];
}

const viewId = (v: CtView): string => `${v.ident}|${v.dir}`;

function protoName(n: number): FlowProto | undefined {
  return n === IPPROTO_TCP ? 'tcp' : n === IPPROTO_UDP ? 'udp' : undefined;
}

export class FlowJoiner {
  /** socket cookie → its owner and how many joins ago it was last seen */
  private cookies = new Map<string, { owner: SocketOwner; age: number }>();
  /** conntrack entry → the socket owner that took it */
  private taken = new Map<string, Remembered>();

  join(input: JoinInput): JoinResult {
    const flows: FlowReading[] = [];
    let uncounted = 0;
    const ct = input.conntrack ?? [];

    // index the entries by the 4-tuple each end sees, and by local port for unconnected sockets
    const byTuple = new Map<string, CtView>();
    const byPort = new Map<string, CtView[]>();
    const idents = new Map<CtEntry, string>();
    for (const e of ct) {
      const ident = ctIdent(e);
      idents.set(e, ident);
      for (const v of viewsOf(e, ident)) {
        byTuple.set(tupleKey(e.proto, v.local, v.remote), v);
        if (e.proto === IPPROTO_UDP && input.isLocal(v.local.addr)) {
          const k = `${e.proto} ${v.local.port}`;
          const list = byPort.get(k);
          if (list) list.push(v);
          else byPort.set(k, [v]);
        }
      }
    }
    /** views (`ident|dir`) a socket took; both of a loopback entry can be */
    const used = new Set<string>();
    const take = (v: CtView): void => void used.add(viewId(v));
    const nextTaken = new Map<string, Remembered>();

    // owners of sockets, carried a few joins so that a late destroy notification finds them
    for (const c of this.cookies.values()) c.age++;
    const ownerOf = (s: InetSocket): SocketOwner => {
      const o = input.owner(s);
      this.cookies.set(s.cookie, { owner: o, age: 0 });
      return o;
    };

    const ends = (s: InetSocket): { local: FlowEnd; remote: FlowEnd } => ({
      local: { addr: canonAddr(s.src), port: s.sport },
      remote: { addr: canonAddr(s.dst), port: s.dport },
    });

    // TCP: counts from tcp_info; conntrack only for the mark
    for (const s of input.tcp) {
      const { local, remote } = ends(s);
      const v = byTuple.get(tupleKey(IPPROTO_TCP, local, remote));
      if (v) take(v);
      if (NOT_FLOW.has(s.state) || s.bytesAcked === undefined) continue;
      const owner = ownerOf(s);
      flows.push(tcpFlow(s, local, remote, owner, v?.entry.mark));
    }
    for (const s of input.destroyed) {
      if (s.proto !== 'tcp' || s.bytesAcked === undefined) continue;
      const { local, remote } = ends(s);
      const v = byTuple.get(tupleKey(IPPROTO_TCP, local, remote));
      if (v) take(v);
      const known = this.cookies.get(s.cookie);
      this.cookies.delete(s.cookie);
      const owner = known?.owner ?? { uid: s.uid };
      flows.push({ ...tcpFlow(s, local, remote, owner, v?.entry.mark), closed: true });
    }

    // UDP: counts from the conntrack entries the sockets take
    const udpFlow = (v: CtView, owner: SocketOwner): void => {
      take(v);
      nextTaken.set(viewId(v), { owner, local: v.local, remote: v.remote, dir: v.dir });
      const f = ctFlow(v.entry, v.dir, v.local, v.remote, 'udp', owner);
      if (!v.entry.origCounters || !v.entry.replyCounters) uncounted++;
      flows.push(f);
    };
    const unconnected: InetSocket[] = [];
    for (const s of input.udp) {
      const { local, remote } = ends(s);
      if (remote.port === 0) {
        unconnected.push(s);
        continue;
      }
      const owner = ownerOf(s);
      const v = byTuple.get(tupleKey(IPPROTO_UDP, local, remote));
      if (v && !used.has(viewId(v))) {
        udpFlow(v, owner);
        continue;
      }
      // connected, no entry (conntrack off in this namespace, or not yet confirmed): no counts
      flows.push({
        key: `udp/${familyOf(local.addr)}/${endText(local)}/${endText(remote)}/${s.cookie}`,
        proto: 'udp',
        family: familyOf(local.addr),
        local,
        remote,
        ...ownerFields(owner),
        sent: 0,
        received: 0,
      });
    }
    for (const s of unconnected) {
      const { local } = ends(s);
      const wildcard = local.addr === '0.0.0.0' || local.addr === '::';
      const v6only = s.family === 6 && !s.src.startsWith('::ffff:') && local.addr !== '::';
      let owner: SocketOwner | undefined;
      for (const v of byPort.get(`${IPPROTO_UDP} ${local.port}`) ?? []) {
        if (used.has(viewId(v))) continue;
        const fam = familyOf(v.local.addr);
        // an AF_INET socket takes IPv4 entries only; an AF_INET6 one both unless bound to a v6 address
        if (s.family === 4 && fam !== 4) continue;
        if (v6only && fam !== 6) continue;
        if (!wildcard && v.local.addr !== local.addr) continue;
        owner ??= ownerOf(s);
        udpFlow(v, owner);
      }
      if (!owner) ownerOf(s);
    }

    // TCP entries a socket took: remembered, so that the end of TIME_WAIT never shows as unattributed
    for (const s of [...input.tcp, ...input.destroyed]) {
      if (s.proto !== 'tcp') continue;
      const { local, remote } = ends(s);
      const v = byTuple.get(tupleKey(IPPROTO_TCP, local, remote));
      if (v) nextTaken.set(viewId(v), { owner: {}, local: v.local, remote: v.remote, dir: v.dir });
    }
    // views no live socket took: a remembered owner's, else (no view of the entry is ours) unattributed
    for (const e of ct) {
      const ident = idents.get(e)!;
      const proto = protoName(e.proto);
      if (!proto) continue;
      let ours = false;
      for (const v of viewsOf(e, ident)) {
        const id = viewId(v);
        if (used.has(id)) {
          ours = true;
          continue;
        }
        const r = this.taken.get(id);
        if (!r) continue;
        ours = true;
        nextTaken.set(id, r);
        if (proto === 'udp') {
          flows.push(ctFlow(e, r.dir, r.local, r.remote, proto, r.owner));
          if (!e.origCounters || !e.replyCounters) uncounted++;
        }
      }
      if (ours) continue;
      // which end is here: an entry that arrived at a local address is seen from its destination
      const [out, inb] = viewsOf(e, ident);
      const v = !input.isLocal(e.orig.src) && input.isLocal(e.reply.src) ? inb : out;
      flows.push(ctFlow(e, v.dir, v.local, v.remote, proto, {}));
    }
    if (input.conntrack !== undefined) this.taken = nextTaken;
    for (const [c, o] of this.cookies) if (o.age > OWNER_GRACE) this.cookies.delete(c);
    return { flows, uncounted };
  }
}

function ownerFields(o: SocketOwner): Pick<FlowReading, 'pid' | 'uid' | 'cgroup'> {
  return {
    ...(o.pid !== undefined ? { pid: o.pid } : {}),
    ...(o.uid !== undefined ? { uid: o.uid } : {}),
    ...(o.cgroup !== undefined ? { cgroup: o.cgroup } : {}),
  };
}

function tcpFlow(
  s: InetSocket,
  local: FlowEnd,
  remote: FlowEnd,
  owner: SocketOwner,
  mark: number | undefined,
): FlowReading {
  const family = familyOf(local.addr);
  return {
    key: `tcp/${family}/${endText(local)}/${endText(remote)}/${s.cookie}`,
    proto: 'tcp',
    family,
    local,
    remote,
    ...ownerFields({ uid: s.uid, ...owner }),
    ...(mark !== undefined ? { mark } : {}),
    sent: s.bytesAcked ?? 0,
    received: s.bytesReceived ?? 0,
  };
}

function ctFlow(
  e: CtEntry,
  dir: 'out' | 'in',
  local: FlowEnd,
  remote: FlowEnd,
  proto: FlowProto,
  owner: SocketOwner,
): FlowReading {
  const out = dir === 'out' ? e.origCounters : e.replyCounters;
  const back = dir === 'out' ? e.replyCounters : e.origCounters;
  const family = e.family;
  const id = e.id !== undefined ? `ct${e.id.toString(16)}` : 'ct';
  return {
    key: `${proto}/${family}/${endText(local)}/${endText(remote)}/${id}`,
    proto,
    family,
    local,
    remote,
    ...ownerFields(owner),
    ...(e.mark !== undefined ? { mark: e.mark } : {}),
    sent: out ? payloadOf(out.bytes, out.packets, family, proto) : 0,
    received: back ? payloadOf(back.bytes, back.packets, family, proto) : 0,
  };
}
