/**
 * The default gateway's link-layer address, from the kernel's neighbour table (Linux:
 * /proc/net/arp, IPv4). Part of a network's identity (profile-switch.ts): the same gateway
 * address behind another router is another network. Undefined when unknown (not resolved
 * yet, IPv6, not Linux).
 */
import { readFileSync } from 'node:fs';

/** the MAC of `gateway` on `dev` in /proc/net/arp's text (complete entries only) */
export function macInArp(text: string, gateway: string, dev: string): string | undefined {
  for (const line of text.split('\n').slice(1)) {
    const [ip, , flags, mac, , device] = line.trim().split(/\s+/);
    // flags 0x2: ATF_COM (complete); 00:00:... is an incomplete entry
    if (ip !== gateway || device !== dev || !mac || !flags) continue;
    if ((Number(flags) & 0x2) === 0 || /^(00:){5}00$/.test(mac)) continue;
    return mac.toLowerCase();
  }
  return undefined;
}

export function gatewayMac(gateway: string, dev: string): string | undefined {
  if (gateway.includes(':')) return undefined;
  // no such file off Linux
  try {
    return macInArp(readFileSync('/proc/net/arp', 'utf8'), gateway, dev);
  } catch {
    return undefined;
  }
}
