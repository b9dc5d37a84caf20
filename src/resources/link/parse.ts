/**
 * `ip -j -d link show` (or `ip -j -d addr show`) → LinkSpec. Pure.
 *
 * Ownership: a link is ours when its name starts with the claimed prefix (`awg-`), it is a
 * TUN (`linkinfo.info_kind` tun, `info_data.type` tun) or a link of the kernel's WireGuard
 * module (`info_kind` wireguard, `engine: kernel`) and it carries our marker alias
 * (IFLA_IFALIAS `awg:managed`). A link with our prefix that lacks any of these is a
 * conflict and is never touched. Links without the prefix are ignored. The ifbs that limits
 * redirect traffic to (`awgq-…`, model/shaping.ts) are ours by the same alias on an `ifb` link.
 */
import type { LinkSpec } from '../../model/resources.js';
import { IFB_PREFIX } from '../../model/shaping.js';

/** IFLA_IFALIAS value that marks a link as created by awg. */
export const LINK_MARKER = 'awg:managed';

/** the alias of a link made for the owner `ownerId` (resources/owner-lock.ts ownerIdOf) */
export function linkAlias(ownerId: string | undefined): string {
  return ownerId ? `${LINK_MARKER} owner=${ownerId}` : LINK_MARKER;
}

/** our marker in an alias: `{ owner }` (absent: a link made before owner tags), or undefined when not ours */
export function parseLinkAlias(alias: string | undefined): { owner?: string } | undefined {
  if (alias === LINK_MARKER) return {};
  const m = /^awg:managed owner=([0-9a-f]{12})$/.exec(alias ?? '');
  return m ? { owner: m[1]! } : undefined;
}

export interface IpLinkJson {
  ifindex?: number;
  ifname?: string;
  flags?: string[];
  mtu?: number;
  operstate?: string;
  ifalias?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: {
      type?: string;
      pi?: boolean;
      persist?: boolean;
      user?: string | number;
      group?: string | number;
      multi_queue?: boolean;
    };
  };
  addr_info?: IpAddrInfoJson[];
}

export interface IpAddrInfoJson {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
  nodad?: boolean;
}

/** What a link looks like beyond its spec (for diagnostics and drift the spec cannot express). */
export interface LinkDetails {
  ifindex: number;
  /** a reader attached without IFF_NO_PI switched the device to PI mode */
  pi: boolean;
  persist: boolean;
  /** TUNSETOWNER uid as ip prints it (number or user name), undefined when unset */
  owner?: string;
  operstate: string;
  /** the owner tag of its alias (the state directory that made it); absent on older links */
  ownerTag?: string;
  /**
   * made by us but not marked yet: a process killed between creating the link and setting its
   * alias left it (known from the state's record of links being made, linux.ts); the next
   * apply marks it or removes it
   */
  unmarked?: boolean;
}

export interface ObservedLink {
  spec: LinkSpec;
  details: LinkDetails;
}

export interface ForeignLink {
  name: string;
  ifindex: number;
  /** why it is not ours */
  reason: string;
  /** the owner tag of another awg state directory's link */
  owner?: string;
}

export interface ParsedLinks {
  owned: ObservedLink[];
  conflicts: ForeignLink[];
}

export function isTun(l: IpLinkJson): boolean {
  return l.linkinfo?.info_kind === 'tun' && (l.linkinfo.info_data?.type ?? 'tun') === 'tun';
}

/** A link of Linux's WireGuard module (`engine: kernel`). */
export function isWireguard(l: IpLinkJson): boolean {
  return l.linkinfo?.info_kind === 'wireguard';
}

/** An ifb (limits redirect a device's traffic to one). */
export function isIfb(l: IpLinkJson): boolean {
  return l.linkinfo?.info_kind === 'ifb';
}

/** Why a prefixed link is not ours, or undefined when it is. */
export function notOursReason(l: IpLinkJson): string | undefined {
  if (!parseLinkAlias(l.ifalias))
    return l.ifalias
      ? `alias is ${JSON.stringify(l.ifalias)}, not our marker ${LINK_MARKER}`
      : `it has no ${LINK_MARKER} alias`;
  if (l.ifname?.startsWith(IFB_PREFIX))
    return isIfb(l)
      ? undefined
      : `it is a ${l.linkinfo?.info_kind ?? 'non-ifb'} device, not an ifb`;
  if (!isTun(l) && !isWireguard(l))
    return `it is a ${l.linkinfo?.info_data?.type ?? l.linkinfo?.info_kind ?? 'non-TUN'} device, not a TUN or wireguard link`;
  return undefined;
}

/** a link we were making (`pending`) that has no alias yet, of a kind we make */
function madeNotMarked(l: IpLinkJson, pending: ReadonlySet<string>): boolean {
  return pending.has(l.ifname ?? '') && !l.ifalias && (isTun(l) || isWireguard(l) || isIfb(l));
}

/**
 * Whose link this is (every driver that touches our links asks the same): ours, possibly made
 * but not marked yet; or not ours, with the reason and, for a link another awg state directory
 * made, its owner tag.
 */
export type LinkOwnership =
  { ours: true; unmarked: boolean; tag?: string } | { ours: false; reason: string; owner?: string };

/**
 * `pending`: the links the state says were being made (link/linux.ts makingLinks); `mine`: our
 * owner tag (resources/owner-lock.ts). Both absent: every marked link is ours.
 */
export interface OwnershipView {
  pending?: ReadonlySet<string> | undefined;
  mine?: string | undefined;
}

export function linkOwnership(l: IpLinkJson, v: OwnershipView = {}): LinkOwnership {
  if (madeNotMarked(l, v.pending ?? new Set())) return { ours: true, unmarked: true };
  const why = notOursReason(l);
  if (why) return { ours: false, reason: why };
  const tag = parseLinkAlias(l.ifalias)?.owner;
  if (v.mine && tag && tag !== v.mine)
    return {
      ours: false,
      reason: `it belongs to another awg state directory (owner tag ${tag})`,
      owner: tag,
    };
  return { ours: true, unmarked: false, ...(tag ? { tag } : {}) };
}

export function classifyLinks(
  links: IpLinkJson[],
  prefix: string,
  view: OwnershipView = {},
): ParsedLinks {
  const out: ParsedLinks = { owned: [], conflicts: [] };
  for (const l of links) {
    const name = l.ifname;
    if (!name || !(name.startsWith(prefix) || name.startsWith(IFB_PREFIX))) continue;
    const ifindex = l.ifindex ?? 0;
    const o = linkOwnership(l, view);
    if (!o.ours) {
      out.conflicts.push({
        name,
        ifindex,
        reason: o.reason,
        ...(o.owner ? { owner: o.owner } : {}),
      });
      continue;
    }
    const d = l.linkinfo?.info_data ?? {};
    const details: LinkDetails = {
      ifindex,
      pi: d.pi === true,
      persist: d.persist === true,
      operstate: l.operstate ?? 'UNKNOWN',
    };
    if (d.user !== undefined) details.owner = String(d.user);
    if (o.tag) details.ownerTag = o.tag;
    if (o.unmarked) details.unmarked = true;
    out.owned.push({
      spec: {
        name,
        kind: isWireguard(l) ? 'wireguard' : isIfb(l) ? 'ifb' : 'tun',
        mtu: l.mtu ?? 0,
        up: (l.flags ?? []).includes('UP'),
      },
      details,
    });
  }
  return out;
}

export function parseLinkJson(text: string, prefix: string, view?: OwnershipView): ParsedLinks {
  const t = text.trim();
  if (!t) return { owned: [], conflicts: [] };
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error('ip -j link: expected a JSON array');
  return classifyLinks(v as IpLinkJson[], prefix, view);
}
