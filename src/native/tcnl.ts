/**
 * Traffic-control change notifications (NETLINK_ROUTE, multicast group RTNLGRP_TC): every
 * qdisc, class and filter added, changed or deleted through rtnetlink, whoever did it (`tc`,
 * our `tc -batch`). The daemon's network watch uses them to see a shaper of ours touched at
 * once instead of at the next drift check. Values from linux/rtnetlink.h (uapi). Pure.
 */
import type { NlMessage } from './rtnl.js';

const RTNLGRP_TC = 4;
/** the bind() group mask for RTNLGRP_TC (RTMGRP_TC) */
export const TC_GROUP_MASK = 1 << (RTNLGRP_TC - 1);

const KINDS: Record<number, string> = {
  36: 'newqdisc',
  37: 'delqdisc',
  40: 'newtclass',
  41: 'deltclass',
  44: 'newtfilter',
  45: 'deltfilter',
};
/** struct tcmsg: family, pad, pad, ifindex (s32), handle, parent, info */
const TCMSG_LEN = 20;

export interface TcEvent {
  type: 'tc';
  change: string;
  ifindex: number;
  /** nlmsg_pid: the port of the socket whose request caused it (`tc`'s), 0 for the kernel */
  portid: number;
}

/** One rtnetlink message → a traffic-control event, or undefined (any other message). */
export function parseTcEvent(m: NlMessage): TcEvent | undefined {
  const change = KINDS[m.type];
  if (!change || m.payload.length < TCMSG_LEN) return undefined;
  return { type: 'tc', change, ifindex: m.payload.readInt32LE(4), portid: m.portid };
}
