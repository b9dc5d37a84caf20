/**
 * Allocation of per-tunnel identifiers inside the claimed bands: a slot per tunnel gives
 * its routing table, its fwmark inside the mask and its ip-rule priority. Slots come from
 * a hash of the name with linear probing in name order, so adding a tunnel rarely moves
 * the others. Explicit `table`/`fwmark` in the config win. Pure.
 */
import type { Config } from '../config/schema.js';

export interface TunnelIds {
  slot: number;
  table: number;
  fwmark: number;
  priority: number;
  /** proxy tunnels: the transparent proxy's local port (routing.proxyPortBase + slot); a failed dial fails the connection */
  redirectPort?: number;
  /** proxy tunnels: the listener for rules with `fallback: allow-direct` (a failed dial redials direct): proxyPortBase + 48 + slot */
  redirectPortDirect?: number;
}

export interface Allocation {
  tunnels: Map<string, TunnelIds>;
  mask: number;
  /** mark carried by traffic that must bypass tunnels (direct rules, the engines' own sockets) */
  bypassMark: number;
  /** priorities for full-tunnel mode (`default: <tunnel>`) */
  defaultPriorities: { bypass: number; suppress: number; catchAll: number };
  /** priority of the per-tunnel "unreachable" guard rules */
  guardBase: number;
  /** the DNS learning stub's port on 127.0.0.1/::1 (UDP and TCP): proxyPortBase + 96, past every tunnel's two ports */
  dnsStubPort: number;
  /** its port for the queries of rules with per-app DNS: proxyPortBase + 97 */
  dnsStubTunnelPort: number;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function markShift(mask: number): number {
  let shift = 0;
  while (shift < 32 && ((mask >>> shift) & 1) === 0) shift++;
  return shift;
}

export class AllocationError extends Error {}

export function allocate(c: Config): Allocation {
  const mask = c.routing.fwmarkMask >>> 0;
  const shift = markShift(mask);
  const width = Math.min(16, 32 - shift);
  // contiguous low bits of the mask define the value space; top value reserved for bypass
  const maxVal = Math.min(((mask >>> shift) & ((1 << width) - 1)) >>> 0, 48);
  const nSlots = Math.max(0, maxVal - 1);
  const bypassMark = (maxVal << shift) >>> 0;
  const names = Object.keys(c.tunnels).sort();
  if (names.length > nSlots)
    throw new AllocationError(
      `routing.fwmarkMask 0x${mask.toString(16)} leaves room for ${nSlots} tunnels; ${names.length} are defined`,
    );
  const used = new Set<number>();
  const tunnels = new Map<string, TunnelIds>();
  for (const name of names) {
    let slot = (fnv1a(name) % nSlots) + 1;
    while (used.has(slot)) slot = (slot % nSlots) + 1;
    used.add(slot);
    const t = c.tunnels[name]!;
    tunnels.set(name, {
      slot,
      table:
        t.type === 'wireguard' || t.type === 'amneziawg'
          ? (t.table ?? c.routing.tableBase + slot)
          : c.routing.tableBase + slot,
      fwmark: t.fwmark ?? (slot << shift) >>> 0,
      priority: c.routing.rulePriority + slot,
      ...(t.type === 'socks5' || t.type === 'http'
        ? {
            redirectPort: c.routing.proxyPortBase + slot,
            redirectPortDirect: c.routing.proxyPortBase + 48 + slot,
          }
        : {}),
    });
  }
  const base = c.routing.rulePriority;
  return {
    tunnels,
    mask,
    bypassMark,
    defaultPriorities: { bypass: base + 60, suppress: base + 61, catchAll: base + 62 },
    guardBase: base + 70,
    dnsStubPort: c.routing.proxyPortBase + 96,
    dnsStubTunnelPort: c.routing.proxyPortBase + 97,
  };
}
