/**
 * nf_tables change notifications (NETLINK_NETFILTER, multicast group NFNLGRP_NFTABLES): every
 * committed change to a table, chain, rule, set, element, object or flowtable is announced
 * with the table it belongs to, whoever made it (`nft -f`, `flush ruleset`, iptables-nft,
 * firewalld). The daemon's network watch uses them to see its kill-switch table touched at
 * once instead of at the next drift check. Values from linux/netfilter/nfnetlink.h and
 * nf_tables.h (uapi).
 */
import { cstr, parseAttrs, type NlMessage } from './rtnl.js';

export const NETLINK_NETFILTER = 12;
export const NFNLGRP_NFTABLES = 7;
/** the bind() group mask for NFNLGRP_NFTABLES */
export const NFT_GROUP_MASK = 1 << (NFNLGRP_NFTABLES - 1);
const NFNL_SUBSYS_NFTABLES = 10;
/** struct nfgenmsg: family, version, res_id */
const NFGENMSG_LEN = 4;

/**
 * The notifications that name a table, and what they announce. Every one carries the table's
 * name as its attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
 * NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE). NEWGEN (15, one per
 * transaction) and TRACE (17) carry none and are skipped; the GET requests (…, GETOBJ 19,
 * GETOBJ_RESET 21) are never notified.
 */
const KINDS: Record<number, string> = {
  0: 'newtable',
  2: 'deltable',
  3: 'newchain',
  5: 'delchain',
  6: 'newrule',
  8: 'delrule',
  9: 'newset',
  11: 'delset',
  12: 'newsetelem',
  14: 'delsetelem',
  18: 'newobj',
  20: 'delobj',
  22: 'newflowtable',
  24: 'delflowtable',
};
const NAME_ATTR = 1;

export interface NftEvent {
  type: 'nft';
  /** what changed: 'deltable', 'newrule', … */
  change: string;
  /** the nfgenmsg family: 1 inet, 2 ip, 10 ip6, … */
  family: number;
  table: string;
  /** nlmsg_pid: the port of the socket whose request caused it (`nft`'s), 0 for the kernel */
  portid: number;
}

/** One nfnetlink message → an event about a table, or undefined (another subsystem, NEWGEN…). */
export function parseNftEvent(m: NlMessage): NftEvent | undefined {
  if (m.type >> 8 !== NFNL_SUBSYS_NFTABLES) return undefined;
  const change = KINDS[m.type & 0xff];
  if (!change || m.payload.length < NFGENMSG_LEN) return undefined;
  const table = cstr(parseAttrs(m.payload, NFGENMSG_LEN).get(NAME_ATTR));
  if (table === undefined) return undefined;
  return { type: 'nft', change, family: m.payload[0]!, table, portid: m.portid };
}

/**
 * This process's own listeners to NFNLGRP_NFTABLES (the daemon's network watch), and a way to
 * make them leave the group while this process loads set elements itself.
 *
 * Why: the kernel builds one notification per element it adds or deletes whenever anything on
 * the host listens to the group (netlink_has_listeners is per protocol, not per namespace). A
 * 100,000-line list is ≈ 73,000 elements: ≈ 73,000 notifications built at commit (measured: a
 * quarter of the load's kernel time, bench/RESULTS.md "Step 24 — lists at once"), and on the
 * daemon's own socket far more than its buffer holds, so the watch overran, saw "events lost"
 * and woke the loop for a full re-observation after every large load of its own. While a load
 * runs, the listeners leave the group and rejoin when it returns. What another program does to
 * our table in that window is what the converge's verify observes next (a load is part of an
 * apply, and verify reads the table after it), and after it the notifications wake as before.
 */
export interface NftListener {
  leave(): void;
  join(): void;
}

const listeners = new Set<NftListener>();
let quiet = 0;

/** Register a socket of this process that listens to NFNLGRP_NFTABLES; returns its removal. */
export function ownNftListener(l: NftListener): () => void {
  listeners.add(l);
  return () => {
    listeners.delete(l);
  };
}

/**
 * Run `load` (synchronous: a set load over netlink) with this process's own listeners out of
 * NFNLGRP_NFTABLES; nested calls leave and rejoin once. A listener that cannot leave stays (its
 * notifications are then skipped as this process's own, as before).
 */
export function withoutOwnNftNotifications<T>(load: () => T): T {
  const left: NftListener[] = [];
  if (quiet++ === 0)
    for (const l of listeners)
      try {
        l.leave();
        left.push(l);
      } catch {
        // stays in the group
      }
  try {
    return load();
  } finally {
    if (--quiet === 0)
      for (const l of left)
        try {
          if (listeners.has(l)) l.join();
        } catch {
          // a socket closed meanwhile
        }
  }
}
