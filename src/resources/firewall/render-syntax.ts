/**
 * The nft syntax render.ts builds rules from: quoted names (a closed alphabet, so a rule name or
 * cgroup path can never inject nft syntax), address sets sorted as nft prints them, cgroup
 * matches, and the statements that set our bits of the packet and conntrack marks. Pure.
 */
import ipaddr from '../../util/ipaddr.js';
import { AwgError } from '../../errors.js';
import { classHandle } from '../../model/shaping.js';
import type { NftCgroupRef, NftPolicy } from './policy.js';

export const LAN4 = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '255.255.255.255',
];
export const LAN6 = ['fc00::/7', 'fe80::/10', 'ff00::/8'];

export const mark32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

export function quoted(s: string, what: string): string {
  if (!/^[A-Za-z0-9_.:/@+=-]*$/.test(s) || s.length > 100)
    throw new AwgError(
      'invalid-config',
      `${what} ${JSON.stringify(s)} cannot be used in an nft rule (letters, digits and _ . : / @ + = - only)`,
    );
  return `"${s}"`;
}

function addrKey(a: string): [number, number[], number] {
  const [addr, len] = a.split('/') as [string, string | undefined];
  const p = ipaddr.parse(addr);
  const bytes = p.toByteArray();
  return [p.kind() === 'ipv4' ? 4 : 6, bytes, len === undefined ? bytes.length * 8 : Number(len)];
}

/** nft prints anonymous sets sorted by value */
export function sortAddrs(list: string[]): string[] {
  return [...new Set(list)].sort((x, y) => {
    const [, a, al] = addrKey(x);
    const [, b, bl] = addrKey(y);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return al - bl;
  });
}

export function familyOf(a: string): 4 | 6 {
  return addrKey(a)[0] as 4 | 6;
}

export function set(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

export function cg(c: NftCgroupRef): string {
  if (!Number.isInteger(c.level) || c.level < 1)
    throw new AwgError('bug', `cgroup ${c.path}: level ${c.level} must be ≥ 1`);
  return `socket cgroupv2 level ${c.level} ${quoted(c.path, 'cgroup path')}`;
}

export const comment = (s: string) => `comment ${quoted(s, 'rule name')}`;

export function checkMark(p: NftPolicy, m: number, what: string): void {
  if (m === 0 || (m & ~p.fwmarkMask) !== 0 || m === p.bypassMark) {
    throw new AwgError(
      'invalid-config',
      `${what}: mark ${mark32(m)} must be non-zero, inside the claimed mask ${mark32(p.fwmarkMask)} and differ from the bypass mark`,
    );
  }
}

/** statements that set tunnel mark `m` on our bits only and save it to the conntrack mark */
export function setMark(p: NftPolicy, m: number): string {
  return `meta mark set meta mark & ${mark32(~p.fwmarkMask | m)} | ${mark32(m)} ct mark set meta mark`;
}

/** `meta priority set 1:<minor> ` of a limited group's class, or nothing */
export function priority(shapeClass: number | undefined): string {
  return shapeClass !== undefined ? `meta priority set ${classHandle(shapeClass)} ` : '';
}
