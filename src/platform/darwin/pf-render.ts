/**
 * PF anchor text for the kill switch and DNS leak protection. Pure; golden-tested.
 *
 * Rendered whole and loaded atomically with `pfctl -a com.awg/<name> -f -` (Mullvad's
 * "render whole, load, read back"). Rules use `quick`, so order is policy: loopback, DNS
 * leak protection, tunnels, endpoints, DHCP, ND, LAN, IPv6 policy, then the final block.
 * Without the kill switch the anchor ends in `pass all` (its last match passes what no
 * quick rule decided), after the IPv6 block of `ipv6: block` (v6BlockRules): a full tunnel's
 * utun carries no v6 route then, so without it v6 would leave by the physical interface.
 * PF cannot match a process, so the endpoint exception is by address and port only.
 *
 * Tunnel interfaces are referenced through macros (`$awg_work`) because the utun number
 * is only known once the engine has created the device; `bindPfLinks` prepends the macro
 * definitions at load time and comments out rules whose link has no utun yet, so the
 * anchor stays closed (fail-closed) before the first connect.
 */

import type { Endpoint, FirewallPolicy } from '../../model/policy.js';
import {
  renderFlowFilter,
  renderFlowLoopback,
  renderFlowTranslation,
  type PfFlowRouter,
} from './pf-flow.js';
import { renderDummynetRules, type PfShaping } from './pf-shaping.js';
import { ANCHOR_ROOT, linkMacro } from './pf-names.js';

export { ANCHOR_ROOT, linkMacro };

export interface PfTunnel {
  /** logical link name (`awg-work`), bound to a utun at load time; none for proxy tunnels */
  link?: string;
  /** resolvers reachable through this tunnel */
  dns: string[];
  /** peers (UDP) and proxies (TCP); pfctl resolves host names at load time */
  endpoints: Endpoint[];
}

export interface PfPolicy {
  killSwitch: boolean;
  allowLan: boolean;
  dnsLeakProtection: boolean;
  ipv6: 'tunnel' | 'block' | 'allow';
  tunnels: PfTunnel[];
  /** per-app routing through the flow router (pf-flow.ts); absent: nothing is redirected */
  flowRouter?: PfFlowRouter;
  /** limits: dummynet rules into awg's pipes (pf-shaping.ts); absent: nothing is shaped */
  shaping?: PfShaping;
}

export const LAN4 = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '255.255.255.255/32',
];
export const LAN6 = ['fe80::/10', 'fc00::/7', 'ff00::/8'];

export function anchorPath(name: string): string {
  if (name.startsWith(`${ANCHOR_ROOT}/`)) return name;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`invalid anchor name ${name}`);
  return `${ANCHOR_ROOT}/${name}`;
}

/**
 * The model's firewall policy → PF policy. Per-app rules (cgroups, marks) have no PF
 * equivalent and are ignored here; IPv6 follows the default route's mode (else `tunnel`).
 */
export function pfPolicyFromFirewallPolicy(p: FirewallPolicy): PfPolicy {
  return {
    killSwitch: p.killSwitch !== 'off',
    allowLan: p.killSwitch === 'allowLan',
    dnsLeakProtection: p.dnsLeakProtection,
    ipv6: p.defaultRoute?.ipv6 ?? 'tunnel',
    tunnels: p.tunnels.map((t) => {
      const base: PfTunnel = {
        dns: [...t.resolvers],
        endpoints: t.endpoints.map((e) => ({ ...e })),
      };
      return t.link ? { link: t.link, ...base } : base;
    }),
  };
}

const list = (xs: string[]) => (xs.length === 1 ? xs[0]! : `{ ${xs.join(' ')} }`);

/** link-local scope: unicast and multicast that never leave the link (ND, mDNS, AWDL) */
export const LINK6 = ['fe80::/10', 'ff02::/16'];

const ND6 =
  'pass quick inet6 proto icmp6 all icmp6-type { routersol routeradv neighbrsol neighbradv }';

/** the engines' own packets to their endpoints (address and port: PF cannot match a process) */
function endpointRules(p: PfPolicy, only?: 'v6'): string[] {
  const eps = new Map<string, Endpoint>();
  for (const e of p.tunnels.flatMap((t) => t.endpoints))
    if (!only || e.address.includes(':')) eps.set(`${e.protocol} ${e.address} ${e.port}`, e);
  return [...eps]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([, e]) =>
        `pass out quick ${e.address.includes(':') ? 'inet6' : 'inet'} proto ${e.protocol} from any to ${e.address} port ${e.port}`,
    );
}

/**
 * `ipv6: block` without the kill switch: IPv6 leaves by no interface but lo0 (passed first),
 * except the engines' packets to IPv6 endpoints (the tunnel's carrier, not traffic routed to
 * it: Linux's bypass mark passes them too), neighbour discovery and link-local destinations
 * (they cannot leave the link; the host's link stays sane: ND, mDNS, AWDL). Before `pass all`.
 */
function v6BlockRules(p: PfPolicy): string[] {
  return [
    ...endpointRules(p, 'v6'),
    ND6,
    `pass out quick inet6 from any to ${list(LINK6)} flags any`,
    'block drop out quick inet6 all',
  ];
}

export function renderPfAnchor(p: PfPolicy): string {
  const l: string[] = ['# awg PF anchor (rendered; do not edit)'];
  if (p.flowRouter) l.push(...renderFlowTranslation(p.flowRouter));
  if (p.shaping) l.push(...renderDummynetRules(p.shaping));
  if (p.flowRouter) l.push(...renderFlowLoopback(p.flowRouter));
  l.push('pass quick on lo0 all flags any');
  if (p.dnsLeakProtection) {
    for (const t of p.tunnels) {
      if (!t.link) continue;
      const m = `$${linkMacro(t.link)}`;
      const v4 = t.dns.filter((d) => !d.includes(':'));
      const v6 = t.dns.filter((d) => d.includes(':'));
      if (v4.length)
        l.push(
          `pass out quick on ${m} inet proto { udp tcp } from any to ${list(v4)} port { 53 853 }`,
        );
      if (v6.length && p.ipv6 !== 'block')
        l.push(
          `pass out quick on ${m} inet6 proto { udp tcp } from any to ${list(v6)} port { 53 853 }`,
        );
    }
    l.push('block drop out quick proto { udp tcp } from any to any port { 53 853 }');
  }
  if (p.flowRouter) l.push(...renderFlowFilter(p.flowRouter));
  if (!p.killSwitch) {
    if (p.ipv6 === 'block') l.push(...v6BlockRules(p));
    l.push('pass all flags any');
    return l.join('\n') + '\n';
  }
  for (const t of p.tunnels) {
    if (!t.link) continue;
    const m = `$${linkMacro(t.link)}`;
    if (p.ipv6 === 'block') l.push(`pass quick on ${m} inet all flags any`);
    else l.push(`pass quick on ${m} all flags any`);
  }
  // IPv6 endpoints pass with `ipv6: block` too (the tunnel's carrier, not traffic routed to
  // it), and reaching them needs ND below
  l.push(...endpointRules(p));
  l.push('pass out quick inet proto udp from any port 68 to any port 67');
  l.push('pass in quick inet proto udp from any port 67 to any port 68');
  if (p.ipv6 !== 'block') {
    // DHCPv6 keeps the uplink's v6 addresses alive
    l.push('pass out quick inet6 proto udp from any port 546 to any port 547');
    l.push('pass in quick inet6 proto udp from any port 547 to any port 546');
  }
  // router and neighbour discovery: the link's own v6 (an IPv6 endpoint's next hop)
  l.push(ND6);
  if (p.allowLan) {
    l.push(`pass out quick inet from any to ${list(LAN4)} flags any`);
    if (p.ipv6 !== 'block') l.push(`pass out quick inet6 from any to ${list(LAN6)} flags any`);
  }
  if (p.ipv6 === 'allow') l.push('pass out quick inet6 all flags any');
  l.push('block drop out quick all');
  return l.join('\n') + '\n';
}

/**
 * Anchor text ready for `pfctl -f -`: macro definitions for bound links, and rules of
 * unbound links commented out. Returns the links that were left unbound.
 */
export function bindPfLinks(
  rendered: string,
  ifnames: Record<string, string | undefined>,
): { text: string; unbound: string[] } {
  const macros = new Map<string, string | undefined>();
  for (const [link, ifn] of Object.entries(ifnames)) macros.set(linkMacro(link), ifn);
  const unbound = new Set<string>();
  const body = rendered.split('\n').map((line) => {
    const used = [...line.matchAll(/\$([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
    const missing = used.filter((u) => !macros.get(u));
    if (!missing.length) return line;
    for (const u of missing) unbound.add(u);
    return `# unbound ${missing.join(',')}: ${line}`;
  });
  const defs = [...macros]
    .filter(([, v]) => v)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} = "${v}"`);
  return {
    text: [...defs, ...body].join('\n').replace(/\n*$/, '\n'),
    unbound: [...unbound].sort(),
  };
}

export const pfctlArgs = {
  /** load an anchor's rules from stdin, atomically replacing the anchor's filter rules */
  loadAnchor: (anchor: string) => ['-a', anchor, '-f', '-'],
  showAnchorRules: (anchor: string) => ['-a', anchor, '-sr'],
  listAnchors: (root = ANCHOR_ROOT) => ['-a', root, '-s', 'Anchors'],
  /** rules only: `-F all` would also clear global state (states, statistics) */
  flushAnchor: (anchor: string) => ['-a', anchor, '-F', 'rules'],
  showMainRules: () => ['-sr'],
  /** translation rules (nat, rdr and their anchors), of the main ruleset or of an anchor */
  showMainNat: () => ['-sn'],
  showAnchorNat: (anchor: string) => ['-a', anchor, '-sn'],
  /** dummynet rules, of the main ruleset (its `dummynet-anchor`s) or of an anchor */
  showMainDummynet: () => ['-s', 'dummynet'],
  showAnchorDummynet: (anchor: string) => ['-a', anchor, '-s', 'dummynet'],
  /** an anchor's dummynet rules (`-F rules` leaves them) */
  flushAnchorDummynet: (anchor: string) => ['-a', anchor, '-F', 'dummynet'],
  /** an anchor's translation rules and its tables (`-F rules` leaves both) */
  flushAnchorNat: (anchor: string) => ['-a', anchor, '-F', 'nat'],
  flushAnchorTables: (anchor: string) => ['-a', anchor, '-F', 'Tables'],
  showReferences: () => ['-s', 'References'],
  showInfo: () => ['-s', 'info'],
  enableRef: () => ['-E'],
  releaseRef: (token: string) => ['-X', token],
  /** PF keeps approved connections in its state table; drop them so new rules apply to existing flows */
  flushStates: () => ['-F', 'states'],
  loadMain: () => ['-f', '-'],
};

/** Lines appended to the main ruleset so our anchors are evaluated (filter section, after com.apple). */
export const MAIN_ANCHOR_RULE = `anchor "${ANCHOR_ROOT}/*" all`;

/**
 * The translation hooks, needed only while an anchor of ours has translation rules (the flow
 * router's `nat` and `rdr`), as `pfctl -sn` prints them.
 */
export const MAIN_NAT_ANCHOR_RULE = `nat-anchor "${ANCHOR_ROOT}/*" all`;
export const MAIN_RDR_ANCHOR_RULE = `rdr-anchor "${ANCHOR_ROOT}/*" all`;

/** does a rendered anchor carry translation rules (the flow router's `nat` and `rdr`)? */
export function hasRdr(ruleset: string): boolean {
  return /^rdr\b/m.test(ruleset);
}

/** Main ruleset text: the system's pf.conf followed by our anchor hook. */
export function renderMainRuleset(pfConf: string): string {
  const base = pfConf.endsWith('\n') ? pfConf : `${pfConf}\n`;
  return `${base}# awg\nanchor "${ANCHOR_ROOT}/*"\n`;
}
