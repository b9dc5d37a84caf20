/**
 * A packet filter for the model host: the subset of pf.conf(5) that awg's renderer emits
 * (platform/darwin/pf-render.ts) evaluated as PF does — last matching rule wins, `quick` ends
 * evaluation, no match = pass. The main ruleset's anchors are followed only for `com.awg/*`
 * (the model's main ruleset holds no filter rules of its own), and nothing is filtered while
 * PF is disabled. A rule this module cannot read throws: an evaluator that skipped it could
 * call a leak closed.
 */
import ipaddr from 'ipaddr.js';
import type { MacHost } from './model.js';

export interface Packet {
  dir: 'in' | 'out';
  iface: string;
  family: 4 | 6;
  proto: 'tcp' | 'udp' | 'icmp' | 'icmp6';
  dst: string;
  dport?: number;
  sport?: number;
}

interface Rule {
  action: 'pass' | 'block';
  dir?: 'in' | 'out';
  quick: boolean;
  on?: string;
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

export function parseRule(text: string): Rule {
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
        r.on = t[i++];
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
        if (t[i] === 'port') [r.sports, i] = ((x) => [x[0].map(Number), x[1]] as [number[], number])(list(t, i + 1));
        break;
      }
      case 'to': {
        let to: string[];
        [to, i] = list(t, i);
        if (!(to.length === 1 && to[0] === 'any')) r.to = to;
        if (t[i] === 'port') [r.dports, i] = ((x) => [x[0].map(Number), x[1]] as [number[], number])(list(t, i + 1));
        break;
      }
      case 'flags':
        if (t[i++] !== 'any') throw new Error(`pf-eval: ${text}`);
        break;
      case 'icmp6-type':
        // neighbour discovery types only; the model's packets never carry a type
        [, i] = list(t, i);
        r.protos = ['icmp6-nd'];
        break;
      default:
        throw new Error(`pf-eval: cannot read "${w}" in: ${text}`);
    }
  }
  return r;
}

function inAny(addr: string, nets: string[]): boolean {
  const a = ipaddr.parse(addr);
  return nets.some((n) => {
    const [net, len] = n.includes('/') ? ipaddr.parseCIDR(n) : [ipaddr.parse(n), a.kind() === 'ipv4' ? 32 : 128];
    return net.kind() === a.kind() && a.match(net, len);
  });
}

function matches(r: Rule, p: Packet): boolean {
  if (r.dir && r.dir !== p.dir) return false;
  if (r.on && r.on !== p.iface) return false;
  if (r.family && r.family !== p.family) return false;
  if (r.protos && !r.protos.includes(p.proto)) return false;
  if (r.to && !inAny(p.dst, r.to)) return false;
  if (r.dports && (p.dport === undefined || !r.dports.includes(p.dport))) return false;
  if (r.sports && (p.sport === undefined || !r.sports.includes(p.sport))) return false;
  return true;
}

/** The verdict of the host's PF for one packet. */
export function pfVerdict(host: MacHost, p: Packet): 'pass' | 'block' {
  if (!host.pf.enabled) return 'pass';
  let verdict: 'pass' | 'block' = 'pass';
  for (const main of host.pf.main) {
    if (!/^anchor "com\.awg\/\*" all$/.test(main)) continue;
    for (const [, rules] of [...host.pf.anchors].filter(([n]) => n.startsWith('com.awg/')).sort()) {
      for (const text of rules) {
        const r = parseRule(text);
        if (!matches(r, p)) continue;
        verdict = r.action;
        if (r.quick) return verdict;
      }
    }
  }
  return verdict;
}
