/**
 * A packet filter for the model host: the subset of pf.conf(5) that awg's renderer emits
 * (platform/darwin/pf-render.ts) evaluated as PF does — last matching rule wins, `quick` ends
 * evaluation, no match = pass. The main ruleset's anchors are followed only for `com.awg/*`
 * (the model's main ruleset holds no filter rules of its own), and nothing is filtered while
 * PF is disabled. A rule this module cannot read throws: an evaluator that skipped it could
 * call a leak closed.
 *
 * The flow router's rules (platform/darwin/pf-flow.ts) too: `on ! if`, `route-to lo0`,
 * `user != N` / `user >= N` (the socket owner's uid: `Packet.uid`), `flags S/SA` (a TCP
 * packet is a SYN unless `syn: false`), `keep state`, `to ! <table>` (the anchor's table),
 * and the anchor's `rdr pass on lo0 … -> addr port N`, evaluated only while the main ruleset
 * has `rdr-anchor "com.awg/*"` (`pfPath`); `no state` and `keep state (if-bound)`, which
 * only UDP's walk through PF's states uses (pf-udp.ts). ICMPv6 router and neighbour
 * discovery is a packet of proto `icmp6-nd`.
 */
import ipaddr from 'ipaddr.js';
import type { MacHost } from './model.js';
import { pfUdpSend } from './pf-udp.js';
import { PfStateTable } from './pf-states.js';

export interface Packet {
  dir: 'in' | 'out';
  iface: string;
  family: 4 | 6;
  /** `icmp6-nd`: ICMPv6 router or neighbour discovery (the rules' `icmp6-type` list) */
  proto: 'tcp' | 'udp' | 'icmp' | 'icmp6' | 'icmp6-nd';
  dst: string;
  dport?: number;
  sport?: number;
  /** the sending socket's owner (PF `user`); undefined: a packet no user rule matches */
  uid?: number;
  /** a TCP packet is a connection's SYN unless false */
  syn?: boolean;
}

export interface Rule {
  action: 'pass' | 'block';
  dir?: 'in' | 'out';
  quick: boolean;
  // parsed from the rule's tokens, which may run out: undefined then
  on?: string | undefined;
  onNot?: string | undefined;
  routeTo?: string | undefined;
  user?: { op: '!=' | '>=' | '='; uid: number };
  synOnly?: boolean;
  /** `no state`: a pass that makes no state (a translation still makes one) */
  noState?: boolean;
  /** `keep state (if-bound)`: the state matches on the rule's interface only */
  ifBound?: boolean;
  toNot?: string[];
  family?: 4 | 6;
  protos?: string[];
  to?: string[];
  dports?: number[];
  sports?: number[];
}

function list(tokens: string[], i: number): [string[], number] {
  if (tokens[i] !== '{') return [[tokens[i]!], i + 1];
  const out: string[] = [];
  i++;
  while (tokens[i] !== '}') {
    if (i >= tokens.length) throw new Error('pf-eval: unclosed list');
    out.push(tokens[i++]!);
  }
  return [out, i + 1];
}

export function parseRule(text: string, tables: ReadonlyMap<string, string[]> = new Map()): Rule {
  const t = text.replace(/[{}]/g, ' $& ').split(/\s+/).filter(Boolean);
  let i = 0;
  const action = t[i++];
  if (action !== 'pass' && action !== 'block') throw new Error(`pf-eval: ${text}`);
  const r: Rule = { action, quick: false };
  if (action === 'block' && t[i] === 'drop') i++;
  while (i < t.length) {
    const w = t[i++]!;
    switch (w) {
      case 'in':
      case 'out':
        r.dir = w;
        break;
      case 'quick':
        r.quick = true;
        break;
      case 'on':
        if (t[i] === '!') {
          r.onNot = t[i + 1];
          i += 2;
        } else r.on = t[i++];
        break;
      case 'route-to':
        r.routeTo = t[i++];
        break;
      case 'user': {
        const op = t[i] === '!=' || t[i] === '>=' ? t[i++]! : '=';
        r.user = { op: op as '!=' | '>=' | '=', uid: Number(t[i++]) };
        break;
      }
      case 'keep':
        if (t[i++] !== 'state') throw new Error(`pf-eval: ${text}`);
        if (t[i] === '(if-bound)') {
          r.ifBound = true;
          i++;
        }
        break;
      case 'no':
        if (t[i++] !== 'state') throw new Error(`pf-eval: ${text}`);
        r.noState = true;
        break;
      case 'inet':
        r.family = 4;
        break;
      case 'inet6':
        r.family = 6;
        break;
      case 'proto':
        [r.protos, i] = list(t, i);
        break;
      case 'all':
        break;
      case 'from': {
        if (t[i++] !== 'any') throw new Error(`pf-eval: from other than any: ${text}`);
        if (t[i] === 'port')
          [r.sports, i] = ((x) => [x[0].map(Number), x[1]] as [number[], number])(list(t, i + 1));
        break;
      }
      case 'to': {
        if (t[i] === '!') {
          const m = /^<([A-Za-z0-9_]+)>$/.exec(t[i + 1] ?? '');
          const entries = m ? tables.get(m[1]!) : undefined;
          if (!entries)
            throw new Error(`pf-eval: negated destination other than a known table: ${text}`);
          r.toNot = entries;
          i += 2;
          break;
        }
        let to: string[];
        [to, i] = list(t, i);
        if (!(to.length === 1 && to[0] === 'any')) r.to = to;
        if (t[i] === 'port')
          [r.dports, i] = ((x) => [x[0].map(Number), x[1]] as [number[], number])(list(t, i + 1));
        break;
      }
      case 'flags': {
        const f = t[i++];
        if (f === 'S/SA') r.synOnly = true;
        else if (f !== 'any') throw new Error(`pf-eval: ${text}`);
        break;
      }
      case 'icmp6-type':
        // neighbour discovery types only: a packet of proto `icmp6-nd` is one of them
        [, i] = list(t, i);
        r.protos = ['icmp6-nd'];
        break;
      default:
        throw new Error(`pf-eval: cannot read "${w}" in: ${text}`);
    }
  }
  return r;
}

export function inAny(addr: string, nets: string[]): boolean {
  const a = ipaddr.parse(addr);
  return nets.some((n) => {
    const [net, len] = n.includes('/')
      ? ipaddr.parseCIDR(n)
      : [ipaddr.parse(n), a.kind() === 'ipv4' ? 32 : 128];
    return net.kind() === a.kind() && a.match(net, len);
  });
}

export function matches(r: Rule, p: Packet): boolean {
  if (r.dir && r.dir !== p.dir) return false;
  if (r.on && r.on !== p.iface) return false;
  if (r.onNot && r.onNot === p.iface) return false;
  if (r.toNot && inAny(p.dst, r.toNot)) return false;
  if (r.synOnly && (p.proto !== 'tcp' || p.syn === false)) return false;
  if (r.user) {
    // PF's user match never matches a packet without a socket owner
    if (p.uid === undefined) return false;
    if (
      r.user.op === '!='
        ? p.uid === r.user.uid
        : r.user.op === '>='
          ? p.uid < r.user.uid
          : p.uid !== r.user.uid
    )
      return false;
  }
  if (r.family && r.family !== p.family) return false;
  if (r.protos && !r.protos.includes(p.proto)) return false;
  if (r.to && !inAny(p.dst, r.to)) return false;
  if (r.dports && (p.dport === undefined || !r.dports.includes(p.dport))) return false;
  if (r.sports && (p.sport === undefined || !r.sports.includes(p.sport))) return false;
  return true;
}

/** The verdict of the host's PF for one packet. */
export function pfVerdict(host: MacHost, p: Packet): 'pass' | 'block' {
  return pfFilter(host, p).verdict;
}

/**
 * the filter's verdict, the rule that decided (none: no rule matched, PF's default pass) and,
 * for a passing `route-to` rule, where it sends the packet
 */
export function pfFilter(
  host: MacHost,
  p: Packet,
): { verdict: 'pass' | 'block'; routeTo?: string; rule?: Rule } {
  if (!host.pf.enabled) return { verdict: 'pass' };
  let last: { verdict: 'pass' | 'block'; routeTo?: string; rule?: Rule } = { verdict: 'pass' };
  for (const main of host.pf.main) {
    if (!/^anchor "com\.awg\/\*" all$/.test(main)) continue;
    for (const [name, rules] of [...host.pf.anchors]
      .filter(([n]) => n.startsWith('com.awg/'))
      .sort()) {
      const tables = host.pf.anchorTables.get(name) ?? new Map<string, string[]>();
      for (const text of rules) {
        const r = parseRule(text, tables);
        if (!matches(r, p)) continue;
        last = {
          verdict: r.action,
          rule: r,
          ...(r.action === 'pass' && r.routeTo ? { routeTo: r.routeTo } : {}),
        };
        if (r.quick) return last;
      }
    }
  }
  return last;
}

/**
 * Where an outbound packet goes: blocked, out as routed, or (`route-to lo0` then the
 * anchor's `rdr` on lo0) redirected to a local listener. A packet sent to lo0 without a
 * matching rdr reaches nothing listening for its destination: `lo0` (fail-closed). TCP is
 * evaluated without states (a SYN); UDP through pf-udp.ts with a state table of its own
 * (the datagram starts a flow), from the interface's first address and `sport` (default
 * 49999).
 */
export function pfPath(
  host: MacHost,
  p: Packet,
): 'block' | 'out' | 'lo0' | { redirect: string; port: number } {
  if (p.proto === 'udp' && p.dir === 'out') {
    const ifc = host.interfaces.get(p.iface);
    const src = (p.family === 6 ? ifc?.inet6 : ifc?.inet)?.[0]?.address;
    if (!src) throw new Error(`pf-eval: ${p.iface} has no IPv${p.family} address to send from`);
    const f = pfUdpSend(host, new PfStateTable(), p.iface, {
      family: p.family,
      src: { address: src, port: p.sport ?? 49999 },
      dst: { address: p.dst, port: p.dport ?? 0 },
      ...(p.uid !== undefined ? { uid: p.uid } : {}),
    });
    if (f.fate === 'wire') return 'out';
    if (f.fate === 'local') return { redirect: f.dst.address, port: f.dst.port };
    return f.why.startsWith('in on lo0') ? 'lo0' : 'block';
  }
  const f = pfFilter(host, p);
  if (f.verdict === 'block') return 'block';
  if (f.routeTo !== 'lo0') return 'out';
  if (!host.pf.nat.includes('rdr-anchor "com.awg/*" all')) return 'lo0';
  for (const [name, rules] of [...host.pf.anchorNat]
    .filter(([n]) => n.startsWith('com.awg/'))
    .sort()) {
    const tables = host.pf.anchorTables.get(name) ?? new Map<string, string[]>();
    for (const text of rules) {
      if (/^nat on lo0 /.test(text)) continue; // outbound UDP only: pf-udp.ts
      const m =
        /^rdr pass (on lo0 (?:inet|inet6) proto (?:tcp|udp) from any to ! <[A-Za-z0-9_]+>) -> (\S+) port (\d+)$/.exec(
          text,
        );
      if (!m) throw new Error(`pf-eval: cannot read the translation rule: ${text}`);
      const r = parseRule(`pass in ${m[1]!}`, tables);
      if (matches(r, { ...p, dir: 'in', iface: 'lo0' }))
        return { redirect: m[2]!, port: Number(m[3]) };
    }
  }
  return 'lo0';
}

/**
 * The dummynet pipes a packet passes, in order (limits: platform/darwin/pf-shaping.ts), as xnu
 * bsd/net/pf.c pf_test_dummynet evaluates PF's dummynet rules: nothing while PF is disabled or
 * the main ruleset has no `dummynet-anchor "com.awg/*"`; the first `quick` rule that matches
 * decides (`no dummynet`: no pipe); after a pipe the packet is evaluated again from the rule
 * after the one that sent it there. Rules of the forms awg renders only; another throws.
 */
export function pfDummynetPath(h: MacHost, p: Packet): number[] {
  if (!h.pf.enabled || !h.pf.dummynet.includes('dummynet-anchor "com.awg/*" all')) return [];
  const rules = [...h.pf.anchorDummynet]
    .filter(([a]) => a.startsWith('com.awg/'))
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([, r]) => r);
  const match = (r: string): { pipe?: number } | undefined => {
    let m: RegExpExecArray | null;
    if ((m = /^no dummynet quick on (\S+) all$/.exec(r))) return p.iface === m[1] ? {} : undefined;
    if ((m = /^dummynet (in|out) quick on (\S+) all pipe (\d+)$/.exec(r)))
      return p.dir === m[1] && p.iface === m[2] ? { pipe: Number(m[3]) } : undefined;
    if (
      (m = /^dummynet (in|out) quick proto tcp from any port (\d+):(\d+) to any pipe (\d+)$/.exec(
        r,
      ))
    )
      return p.dir === m[1] &&
        p.proto === 'tcp' &&
        p.sport !== undefined &&
        p.sport >= Number(m[2]) &&
        p.sport <= Number(m[3])
        ? { pipe: Number(m[4]) }
        : undefined;
    if (
      (m = /^dummynet (in|out) quick proto tcp from any to any port (\d+):(\d+) pipe (\d+)$/.exec(
        r,
      ))
    )
      return p.dir === m[1] &&
        p.proto === 'tcp' &&
        p.dport !== undefined &&
        p.dport >= Number(m[2]) &&
        p.dport <= Number(m[3])
        ? { pipe: Number(m[4]) }
        : undefined;
    throw new Error(`pf-eval: a dummynet rule it cannot read: ${r}`);
  };
  const pipes: number[] = [];
  let after = -1;
  for (;;) {
    let hit: { i: number; pipe?: number } | undefined;
    for (let i = after + 1; i < rules.length; i++) {
      const m = match(rules[i]!);
      if (m) {
        hit = { i, ...m };
        break;
      }
    }
    if (!hit || hit.pipe === undefined) return pipes;
    pipes.push(hit.pipe);
    after = hit.i;
  }
}
