/**
 * What the daemon listens for on the system bus, and the reading of `busctl monitor
 * --json=short` lines (one JSON message per line; systemd 252). Pure.
 *
 * The bus filters by the match rules below (a sender named by its well-known name matches
 * whoever owns it now); busctl prints the sender's unique name (`:1.32`), so a line is
 * classified by path, interface, member and payload alone.
 */

import type { SystemEvent } from './types.js';

export const RESOLVE1 = 'org.freedesktop.resolve1';
const NM = 'org.freedesktop.NetworkManager';
const LOGIN1 = 'org.freedesktop.login1';
const PROPS = 'org.freedesktop.DBus.Properties';

/** `busctl monitor --match=…` rules, one argument each */
export const SYSTEM_BUS_MATCHES: readonly string[] = [
  // resolved (re)started: it may have forgotten runtime per-link settings
  `type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${RESOLVE1}'`,
  // resolved's Manager DNS/Domains changed (someone set or reverted a link; ours echo too)
  `type='signal',sender='${RESOLVE1}',path='/org/freedesktop/resolve1',interface='${PROPS}',member='PropertiesChanged'`,
  // NetworkManager reconfigured: global state, a device or connection activated, a DHCP lease
  `type='signal',sender='${NM}',interface='${NM}',member='StateChanged'`,
  `type='signal',sender='${NM}',interface='${NM}.Device',member='StateChanged'`,
  `type='signal',sender='${NM}',interface='${NM}.Connection.Active',member='StateChanged'`,
  `type='signal',sender='${NM}',interface='${PROPS}',member='PropertiesChanged',arg0='${NM}.DHCP4Config'`,
  `type='signal',sender='${NM}',interface='${PROPS}',member='PropertiesChanged',arg0='${NM}.DHCP6Config'`,
  // suspend and resume
  `type='signal',sender='${LOGIN1}',path='/org/freedesktop/login1',interface='${LOGIN1}.Manager',member='PrepareForSleep'`,
];

/** a signal that matters (types.ts SystemEvent) */
export type BusEvent = SystemEvent;

/** NM_DEVICE_STATE_ACTIVATED, NM_ACTIVE_CONNECTION_STATE_ACTIVATED */
const DEVICE_ACTIVATED = 100;
const CONNECTION_ACTIVATED = 2;
/** NMState: what a global state change means (for the detail only) */
const NM_STATES: Record<number, string> = {
  10: 'asleep',
  20: 'disconnected',
  30: 'disconnecting',
  40: 'connecting',
  50: 'connected (local)',
  60: 'connected (site)',
  70: 'connected (global)',
};

interface Message {
  type?: unknown;
  path?: unknown;
  interface?: unknown;
  member?: unknown;
  payload?: { type?: unknown; data?: unknown };
}

/** One line of `busctl monitor --json=short`; undefined for what does not matter or does not parse. */
export function classifyBusLine(line: string): BusEvent | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  let m: Message;
  try {
    m = JSON.parse(t) as Message;
  } catch {
    return undefined;
  }
  if (m.type !== 'signal' || typeof m.path !== 'string') return undefined;
  const data = Array.isArray(m.payload?.data) ? (m.payload.data as unknown[]) : [];
  const iface = m.interface;
  const member = m.member;

  if (iface === 'org.freedesktop.DBus' && member === 'NameOwnerChanged') {
    // [name, old owner, new owner]: only an appearing owner has settings to be told
    if (data[0] === RESOLVE1 && typeof data[2] === 'string' && data[2] !== '')
      return { kind: 'resolved', detail: 'systemd-resolved started' };
    return undefined;
  }
  if (iface === PROPS && member === 'PropertiesChanged') {
    const changed =
      data[1] && typeof data[1] === 'object' ? Object.keys(data[1] as object).sort() : [];
    if (m.path === '/org/freedesktop/resolve1' && data[0] === `${RESOLVE1}.Manager`) {
      // the Manager's DNS and Domains list every link's; other properties (cache, …) do not matter
      const relevant = changed.filter((k) =>
        /^(DNS|DNSEx|Domains|FallbackDNS|DNSSEC|DNSOverTLS)$/.test(k),
      );
      return relevant.length
        ? { kind: 'resolved-changed', detail: `systemd-resolved: ${relevant.join(', ')} changed` }
        : undefined;
    }
    if (data[0] === `${NM}.DHCP4Config` || data[0] === `${NM}.DHCP6Config`)
      return {
        kind: 'network-manager',
        detail: `NetworkManager: ${data[0] === `${NM}.DHCP4Config` ? 'DHCPv4' : 'DHCPv6'} lease changed`,
      };
    return undefined;
  }
  if (member === 'StateChanged') {
    if (iface === NM && typeof data[0] === 'number')
      return {
        kind: 'network-manager',
        detail: `NetworkManager: ${NM_STATES[data[0]] ?? `state ${data[0]}`}`,
      };
    if (iface === `${NM}.Device` && data[0] === DEVICE_ACTIVATED)
      return {
        kind: 'network-manager',
        detail: `NetworkManager: device ${m.path.split('/').pop()} activated`,
      };
    if (iface === `${NM}.Connection.Active` && data[0] === CONNECTION_ACTIVATED)
      return {
        kind: 'network-manager',
        detail: `NetworkManager: connection ${m.path.split('/').pop()} activated`,
      };
    return undefined;
  }
  if (iface === `${LOGIN1}.Manager` && member === 'PrepareForSleep') {
    // [true] before sleep (nothing to do), [false] after resume
    return data[0] === false ? { kind: 'resume', detail: 'resumed from sleep' } : undefined;
  }
  return undefined;
}
