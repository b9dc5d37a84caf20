/**
 * `ip -j -d addr show` → AddressSpec. Pure.
 *
 * Ownership follows the link: every address on a link we own (see link/parse.ts) is ours,
 * whoever added it; addresses elsewhere are ignored. IPv6 link-local addresses (fe80::/10)
 * are the kernel's and never part of the model.
 */
import ipaddr from '../../util/ipaddr.js';
import type { AddressSpec } from '../../model/resources.js';
import { linkOwnership, type IpLinkJson, type OwnershipView } from '../link/parse.js';

export interface ParsedAddresses {
  owned: AddressSpec[];
  /** awg- links that are not ours, with the reason (addresses there are never touched) */
  foreignLinks: Map<string, string>;
  /** links we own (with or without addresses) */
  ownedLinks: Set<string>;
}

/** `10.0.0.2/32`, `fd00::2/128`: host address as ipaddr prints it, prefix kept. */
export function canonicalHostCidr(
  addr: string,
  prefixlen: number,
): { cidr: string; family: 4 | 6 } {
  const a = ipaddr.parse(addr);
  return { cidr: `${a.toString()}/${prefixlen}`, family: a.kind() === 'ipv4' ? 4 : 6 };
}

function isLinkLocal6(addr: string): boolean {
  const a = ipaddr.parse(addr);
  return a.kind() === 'ipv6' && a.range() === 'linkLocal';
}

/** `view`: whose links are ours (link/parse.ts linkOwnership) */
export function classifyAddresses(
  links: IpLinkJson[],
  prefix: string,
  view: OwnershipView = {},
): ParsedAddresses {
  const out: ParsedAddresses = { owned: [], foreignLinks: new Map(), ownedLinks: new Set() };
  for (const l of links) {
    const name = l.ifname;
    if (!name || !name.startsWith(prefix)) continue;
    const o = linkOwnership(l, view);
    if (!o.ours) {
      out.foreignLinks.set(name, o.reason);
      continue;
    }
    out.ownedLinks.add(name);
    for (const a of l.addr_info ?? []) {
      if ((a.family !== 'inet' && a.family !== 'inet6') || !a.local || a.prefixlen === undefined)
        continue;
      if (isLinkLocal6(a.local)) continue;
      const { cidr, family } = canonicalHostCidr(a.local, a.prefixlen);
      out.owned.push({ link: name, cidr, family });
    }
  }
  return out;
}

export function parseAddrJson(text: string, prefix: string, view?: OwnershipView): ParsedAddresses {
  const t = text.trim();
  if (!t) return classifyAddresses([], prefix);
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error('ip -j addr: expected a JSON array');
  return classifyAddresses(v as IpLinkJson[], prefix, view);
}
