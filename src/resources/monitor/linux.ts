/**
 * The Linux network wake source: rtnetlink link, address and route groups, and nf_tables
 * notifications for our table (koffi). It only says "something changed"; the daemon's loop
 * re-observes.
 *
 * Traffic-control changes (RTNLGRP_TC, native/tcnl.ts) that our own `tc` did not make wake it
 * too: someone deleting a qdisc or class of a shaper is drift.
 *
 * Our own changes echo back as rtnetlink events. While a run is in flight and shortly
 * after (`isEcho`), events on our links (except an admin-down), routes with our protocol and
 * kernel noise on our links (IPv6 link-local, local table) are ignored. Outside that window
 * every event counts, ours included: someone deleting our route is drift. Link events always
 * count (outside the window): an admin-down link loses its IPv4 routes without RTM_DELROUTE.
 */
import type { NetlinkSocket } from '../../native/netlink.js';
import type { NftEvent } from '../../native/nftnl.js';
import type { TcEvent } from '../../native/tcnl.js';
import type { ResyncEvent, RtnlEvent } from '../../native/rtnl.js';
import { spawnedRecently } from '../../util/exec.js';
import { isOwnSetWriterPort } from '../../native/nftset.js';
import type { NetworkWatch, NetworkWatchOptions } from './types.js';

export interface RtnlFilterState {
  /** ifindex → name, learnt from link events */
  names: Map<number, string>;
}

const LOCAL_TABLE = 255;
/**
 * ifi_change bits that say nothing about routing: a packet capture (`tcpdump` without `-p`)
 * turns promiscuous mode on and off with a notification each, and multicast listeners toggle
 * allmulti. A newlink whose change mask holds only these is not drift, whoever's link it is.
 */
const IFF_PROMISC = 0x100;
const IFF_ALLMULTI = 0x200;
const CAPTURE_ONLY = ~(IFF_PROMISC | IFF_ALLMULTI);

function describe(e: RtnlEvent, names: Map<number, string>): string {
  switch (e.type) {
    case 'resync':
      return 'netlink events lost: full re-observation';
    case 'newlink':
    case 'dellink':
      return `${e.type} ${e.ifname ?? names.get(e.ifindex) ?? `#${e.ifindex}`}${e.type === 'newlink' ? ((e.flags & 1) === 1 ? ' up' : ' down') : ''}`;
    case 'newaddr':
    case 'deladdr':
      return `${e.type} ${e.address ?? '?'}/${e.prefixlen} dev ${names.get(e.ifindex) ?? `#${e.ifindex}`}`;
    case 'newroute':
    case 'delroute':
      return `${e.type} ${e.dst} table ${e.table}${e.ifindex ? ` dev ${names.get(e.ifindex) ?? `#${e.ifindex}`}` : ''}`;
  }
}

/**
 * Which events of a batch wake the loop. Pure apart from learning link names into `st`.
 * Returns a description of the first waking event, or undefined.
 */
export function wakingEvent(
  events: RtnlEvent[],
  st: RtnlFilterState,
  o: { echo: boolean; linkPrefix: string; routeProtocol?: number },
): string | undefined {
  let first: string | undefined;
  for (const e of events) {
    // a link we have not seen before is being created (a TUN is born down, then set up)
    const created = e.type === 'newlink' && !st.names.has(e.ifindex);
    if ((e.type === 'newlink' || e.type === 'dellink') && e.ifname)
      st.names.set(e.ifindex, e.ifname);
    if (e.type === 'resync') {
      first ??= describe(e, st.names);
      continue;
    }
    if (e.type === 'newlink' && e.change !== 0 && (e.change & CAPTURE_ONLY) === 0) continue;
    const name =
      st.names.get(e.ifindex) ??
      (e.type === 'newlink' || e.type === 'dellink' ? e.ifname : undefined);
    const ours = name !== undefined && name.startsWith(o.linkPrefix);
    // kernel noise on our own links: IPv6 link-local addresses and local-table routes
    if (
      ours &&
      (e.type === 'newaddr' || e.type === 'deladdr') &&
      e.address?.toLowerCase().startsWith('fe80')
    )
      continue;
    if (
      ours &&
      (e.type === 'newroute' || e.type === 'delroute') &&
      (e.table === LOCAL_TABLE ||
        e.dst.toLowerCase().startsWith('fe80') ||
        e.dst.toLowerCase().startsWith('ff00'))
    )
      continue;
    if (o.echo) {
      // an admin-down of our link always counts: its IPv4 routes are gone without events;
      // not the first sight of a link of ours, which our run is creating (it has no routes yet)
      const adminDown = e.type === 'newlink' && (e.flags & 1) === 0 && !created;
      if (ours && !adminDown) continue;
      if (
        (e.type === 'newroute' || e.type === 'delroute') &&
        o.routeProtocol !== undefined &&
        e.protocol === o.routeProtocol
      )
        continue;
    }
    first ??= describe(e, st.names);
  }
  if (events.some((e) => e.type === 'dellink'))
    for (const e of events) if (e.type === 'dellink') st.names.delete(e.ifindex);
  return first;
}

const INET = 1;
/** how long after a deletion of our table seen during our own run we look whether it came back */
export const NFT_RECHECK_MS = 250;

/**
 * Which nf_tables notifications wake the loop: any change to our table (`inet <table>`) that we
 * did not make, and lost events. Our own changes are told apart by the notification's
 * nlmsg_pid, which for `nft` is its pid (`ours`: a command this process ran, util/exec.ts
 * spawnedRecently): they never wake, whenever they arrive. Someone else's change wakes at once,
 * also during our own run (a rule deleted then would otherwise wait for the drift timer).
 * A change the kernel made itself (port 0) wakes outside the echo window only, as every change
 * did before pids were compared. A deletion of our table that was skipped asks for a second look
 * after NFT_RECHECK_MS: if the table has not come back (a replace's notifications may arrive
 * in two reads, the deletion first), that wakes: until it is back the kill switch is open.
 */
export class NftTableWatch {
  /** our table exists, as far as the notifications tell */
  private present = true;
  constructor(
    private readonly table: () => string,
    private readonly ours: (portid: number) => boolean = () => false,
  ) {}

  batch(events: (NftEvent | ResyncEvent)[], echo: boolean): { wake?: string; recheck?: true } {
    let wake: string | undefined;
    let deleted = false;
    const table = this.table();
    for (const e of events) {
      if (e.type === 'resync') {
        wake ??= 'nftables events lost: full re-observation';
        continue;
      }
      if (e.family !== INET || e.table !== table) continue;
      if (e.change === 'deltable') this.present = false;
      if (e.change === 'newtable') this.present = true;
      const skip = this.ours(e.portid) || (echo && e.portid === 0);
      if (!skip) wake ??= `nftables: ${e.change} inet ${e.table}${by(e.portid)}`;
      else deleted ||= e.change === 'deltable';
    }
    return wake ? { wake } : deleted && !this.present ? { recheck: true } : {};
  }

  /** the second look: a wake if our table is still gone */
  recheck(): string | undefined {
    return this.present ? undefined : `nftables: deltable inet ${this.table()}`;
  }
}

const by = (portid: number) => (portid > 0 ? ` (netlink port ${portid})` : '');

/**
 * Which traffic-control notifications wake the loop: a change our own `tc` did not make (its
 * netlink port is its pid: util/exec.ts spawnedRecently), and lost events. The kernel's own
 * (port 0: a device going away takes its qdiscs along) wake outside the echo window only.
 */
export function tcWakingEvent(
  events: (TcEvent | ResyncEvent)[],
  names: ReadonlyMap<number, string>,
  o: { echo: boolean; ours: (portid: number) => boolean },
): string | undefined {
  for (const e of events) {
    if (e.type === 'resync') return 'traffic-control events lost: full re-observation';
    if (o.ours(e.portid) || (o.echo && e.portid === 0)) continue;
    return `tc: ${e.change} dev ${names.get(e.ifindex) ?? `#${e.ifindex}`}${by(e.portid)}`;
  }
  return undefined;
}

export async function watchLinuxNetwork(o: NetworkWatchOptions): Promise<NetworkWatch> {
  const { openMonitor, dumpLinks, NetlinkSocket } = await import('../../native/netlink.js');
  const mon = openMonitor({ rcvbuf: 1 << 20, ...(o.netns ? { netns: o.netns } : {}) });
  const nft = await watchNftables(o, NetlinkSocket);
  const st: RtnlFilterState = { names: new Map() };
  try {
    const req = NetlinkSocket.open(o.netns ? { netns: o.netns } : {});
    try {
      for (const l of dumpLinks(req)) if (l.ifname) st.names.set(l.ifindex, l.ifname);
    } finally {
      req.close();
    }
  } catch {
    /* names are learnt from events as well */
  }
  mon.listen((events) => {
    const d = wakingEvent(events, st, { echo: o.isEcho(), ...o.claims() });
    if (d) o.onChange(d);
  });
  const tc = await watchTc(o, NetlinkSocket, st.names);
  return {
    close: () => {
      mon.close();
      nft?.close();
      tc?.close();
    },
  };
}

/** The traffic-control notifications, on a socket of their own (undefined where it cannot open). */
async function watchTc(
  o: NetworkWatchOptions,
  Socket: typeof NetlinkSocket,
  names: ReadonlyMap<number, string>,
): Promise<{ close(): void } | undefined> {
  const { TC_GROUP_MASK, parseTcEvent } = await import('../../native/tcnl.js');
  let sock: NetlinkSocket;
  try {
    sock = Socket.open({
      groups: TC_GROUP_MASK,
      rcvbuf: 1 << 18,
      ...(o.netns ? { netns: o.netns } : {}),
    });
  } catch {
    return undefined;
  }
  sock.listenWith(parseTcEvent, (events) => {
    const d = tcWakingEvent(events, names, { echo: o.isEcho(), ours: spawnedRecently });
    if (d) o.onChange(d, 'shaper');
  });
  return { close: () => sock.close() };
}

/**
 * The nf_tables notifications, on a socket of their own. Undefined where the kernel offers none
 * (no nf_tables: then there is no kill-switch table to watch either, and the drift timer stays).
 */
async function watchNftables(
  o: NetworkWatchOptions,
  Socket: typeof NetlinkSocket,
): Promise<{ close(): void } | undefined> {
  const { NETLINK_NETFILTER, NFT_GROUP_MASK, NFNLGRP_NFTABLES, parseNftEvent, ownNftListener } =
    await import('../../native/nftnl.js');
  let sock: NetlinkSocket;
  try {
    sock = Socket.open({
      protocol: NETLINK_NETFILTER,
      groups: NFT_GROUP_MASK,
      // a replace of a large table announces every rule: room for a few thousand
      rcvbuf: 1 << 20,
      ...(o.netns ? { netns: o.netns } : {}),
    });
  } catch {
    return undefined;
  }
  // our nft commands, and the DNS stub's set writer (learned elements)
  const w = new NftTableWatch(
    () => o.claims().nftTable,
    (p) => spawnedRecently(p) || isOwnSetWriterPort(p),
  );
  let timer: NodeJS.Timeout | undefined;
  sock.listenWith(parseNftEvent, (events) => {
    const r = w.batch(events, o.isEcho());
    if (r.wake) o.onChange(r.wake, 'firewall');
    if (r.recheck && !timer)
      timer = setTimeout(() => {
        timer = undefined;
        const d = w.recheck();
        if (d) o.onChange(d, 'firewall');
      }, NFT_RECHECK_MS).unref();
  });
  // out of the group while this process loads set elements itself (nftnl.ts: one notification
  // per element would overrun this socket and wake a full re-observation after every large
  // load); back in when the load returns. Failing to rejoin is a lost-events wake.
  const unregister = ownNftListener({
    leave: () => sock.membership(NFNLGRP_NFTABLES, false),
    join: () => {
      try {
        sock.membership(NFNLGRP_NFTABLES, true);
      } catch (e) {
        if (!sock.closed) o.onChange(`nftables watch could not rejoin: ${String(e)}`, 'firewall');
      }
    },
  });
  return {
    close: () => {
      unregister();
      clearTimeout(timer);
      sock.close();
    },
  };
}
