/**
 * A UDP datagram through the model host's PF, with PF's states (pf-states.ts): what the flow
 * router's UDP rules (platform/darwin/pf-flow.ts) do to an app's datagram and to the router's
 * reply. Evaluated as xnu bsd/net/pf.c does (read in the public source, not observed):
 * - pf_test: a state of the packet's direction and interface first (OUT: source := the
 *   key's gwy; IN: destination := its lan); else the anchor's translation rules (`nat` for
 *   OUT, `rdr` for IN, only while the main ruleset has `nat-anchor` / `rdr-anchor
 *   "com.awg/*"`), then the filter rules on the translated packet (pf-eval.ts pfFilter); a
 *   state is made when a translation applied or a passing rule keeps state (not `no state`),
 *   bound to the interface with `(if-bound)`, floating otherwise; `rdr pass` skips the filter;
 * - pf_route: a passing `route-to` sends the packet to that interface's output, where it is
 *   tested again (PF_OUT on it) unless it is the interface it was on;
 * - lo0's output loops the packet back in on lo0 (tested PF_IN there), then it is delivered
 *   when its destination is one of the host's addresses (127/8, ::1, every interface's),
 *   else dropped (forwarding is off); any other interface puts it on the wire.
 * The model's rules are the renderer's; another translation rule throws.
 */
import ipaddr from 'ipaddr.js';
import type { MacHost } from './model.js';
import { pfFilter, type Packet } from './pf-eval.js';
import { matches, parseRule } from './pf-eval.js';
import { sameEp, type Ep, type PfStateTable } from './pf-states.js';

export interface Datagram {
  family: 4 | 6;
  src: Ep;
  dst: Ep;
  /** the sending socket's owner (PF `user`); undefined for a packet PF finds no socket for */
  uid?: number;
}

export type UdpFate =
  | { fate: 'wire'; iface: string; src: Ep; dst: Ep }
  | { fate: 'local'; src: Ep; dst: Ep }
  | { fate: 'dropped'; why: string };

interface Tested {
  verdict: 'pass' | 'block';
  d: Datagram;
  routeTo?: string;
  why?: string;
}

interface Translation {
  kind: 'nat' | 'rdr';
  to: string;
  low: number;
  high: number;
}

/** the anchors' translation rule for this UDP packet, if one matches */
function translation(
  host: MacHost,
  dir: 'in' | 'out',
  iface: string,
  d: Datagram,
): Translation | undefined {
  const hook = dir === 'out' ? 'nat-anchor "com.awg/*" all' : 'rdr-anchor "com.awg/*" all';
  if (!host.pf.nat.includes(hook)) return undefined;
  for (const [name, rules] of [...host.pf.anchorNat]
    .filter(([n]) => n.startsWith('com.awg/'))
    .sort()) {
    const tables = host.pf.anchorTables.get(name) ?? new Map<string, string[]>();
    for (const text of rules) {
      const m =
        /^(nat|rdr pass) (on \S+ (?:inet|inet6) proto (tcp|udp) from any to ! <[A-Za-z0-9_]+>) -> (\S+) port (\d+)(?::(\d+))?$/.exec(
          text,
        );
      if (!m) throw new Error(`pf-udp: cannot read the translation rule: ${text}`);
      const kind = m[1] === 'nat' ? 'nat' : 'rdr';
      if ((kind === 'nat') !== (dir === 'out') || m[3] !== 'udp') continue;
      const r = parseRule(`pass ${dir} ${m[2]!}`, tables);
      if (!matches(r, packet(dir, iface, d))) continue;
      const low = Number(m[5]);
      return { kind, to: m[4]!, low, high: m[6] ? Number(m[6]) : low };
    }
  }
  return undefined;
}

function packet(dir: 'in' | 'out', iface: string, d: Datagram): Packet {
  return {
    dir,
    iface,
    family: d.family,
    proto: 'udp',
    dst: d.dst.address,
    dport: d.dst.port,
    sport: d.src.port,
    ...(d.uid !== undefined ? { uid: d.uid } : {}),
  };
}

/** pf_test for one UDP packet on `iface` */
function pfTest(
  host: MacHost,
  t: PfStateTable,
  dir: 'in' | 'out',
  iface: string,
  d: Datagram,
): Tested {
  if (!host.pf.enabled) return { verdict: 'pass', d };
  const s = t.find(dir, iface, d.src, d.dst);
  if (s) {
    const out = dir === 'out' ? { ...d, src: { ...s.key.gwy } } : { ...d, dst: { ...s.key.lan } };
    return { verdict: 'pass', d: out, ...(s.routeTo ? { routeTo: s.routeTo } : {}) };
  }
  const tr = translation(host, dir, iface, d);
  let x = d;
  if (tr?.kind === 'nat') {
    const port = t.natPort(d.dst, tr.to, tr.low, tr.high);
    if (port === undefined) return { verdict: 'block', d, why: 'no nat port free' };
    x = { ...d, src: { address: tr.to, port } };
  } else if (tr?.kind === 'rdr') x = { ...d, dst: { address: tr.to, port: tr.low } };
  const f =
    tr?.kind === 'rdr' ? { verdict: 'pass' as const } : pfFilter(host, packet(dir, iface, x));
  if (f.verdict === 'block') return { verdict: 'block', d: x, why: 'blocked by a rule' };
  const rule = 'rule' in f ? f.rule : undefined;
  if (tr || (rule && !rule.noState)) {
    const key =
      dir === 'out'
        ? { family: d.family, lan: d.src, gwy: x.src, ext: d.dst }
        : { family: d.family, ext: d.src, gwy: d.dst, lan: x.dst };
    const made = t.insert(key, {
      kif: rule?.ifBound ? iface : '*',
      by: tr ? tr.kind : 'filter',
      ...(rule?.routeTo ? { routeTo: rule.routeTo } : {}),
    });
    if (made === 'collision') return { verdict: 'block', d: x, why: 'state insert collision' };
    // a state that joined an existing key translates as that key does
    if (!sameEp(made.key.gwy, key.gwy))
      x = dir === 'out' ? { ...x, src: { ...made.key.gwy } } : { ...x, dst: { ...made.key.lan } };
  }
  return { verdict: 'pass', d: x, ...(f.routeTo ? { routeTo: f.routeTo } : {}) };
}

/** the host's own addresses: lo0's 127/8 and ::1, and every interface's */
function isLocal(host: MacHost, address: string): boolean {
  const a = ipaddr.parse(address);
  if (a.kind() === 'ipv4' && a.match(ipaddr.parseCIDR('127.0.0.0/8'))) return true;
  const norm = a.toNormalizedString();
  return [...host.interfaces.values()].some((i) =>
    [...i.inet, ...i.inet6].some((x) => ipaddr.parse(x.address).toNormalizedString() === norm),
  );
}

/** lo0's output: back in on lo0, then delivered when it is for this host */
function loop(host: MacHost, t: PfStateTable, d: Datagram): UdpFate {
  const r = pfTest(host, t, 'in', 'lo0', d);
  if (r.verdict === 'block') return { fate: 'dropped', why: `in on lo0: ${r.why}` };
  if (!isLocal(host, r.d.dst.address))
    return { fate: 'dropped', why: `in on lo0 for ${r.d.dst.address}: not this host's` };
  return { fate: 'local', src: r.d.src, dst: r.d.dst };
}

/**
 * A datagram the routing table sends out `iface` (the app's, or the router's reply on lo0):
 * through PF (states in `t`), route-to, and lo0's loop, to where it ends.
 */
export function pfUdpSend(host: MacHost, t: PfStateTable, iface: string, d: Datagram): UdpFate {
  const r = pfTest(host, t, 'out', iface, d);
  if (r.verdict === 'block') return { fate: 'dropped', why: `out on ${iface}: ${r.why}` };
  let out = r.d;
  let ifn = iface;
  if (r.routeTo && r.routeTo !== iface) {
    const r2 = pfTest(host, t, 'out', r.routeTo, out);
    if (r2.verdict === 'block')
      return { fate: 'dropped', why: `route-to ${r.routeTo}, out there: ${r2.why}` };
    out = r2.d;
    ifn = r.routeTo;
  }
  if (ifn === 'lo0') return loop(host, t, out);
  return { fate: 'wire', iface: ifn, src: out.src, dst: out.dst };
}
