/**
 * The qdiscs of `tc -j qdisc show` from rtnetlink messages (docs/platform-linux.md#rtnetlink,
 * "Qdiscs"): an RTM_GETQDISC dump's RTM_NEWQDISC (struct tcmsg, TCA_KIND,
 * TCA_OPTIONS) and a link dump's names → the entries iproute2 6.1 prints, with the keys the
 * shaper reads (resources/shaper/parse.ts `parseQdiscJson`) valued as tc prints them. Values
 * from linux/rtnetlink.h and linux/pkt_sched.h (uapi). Pure: no I/O.
 */
import {
  AF_UNSPEC,
  IFLA_IFNAME,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  RTM_NEWLINK,
  buildMessage,
  cstr,
  parseAttrs,
  type NlMessage,
} from './rtnl.js';

export const RTM_NEWQDISC = 36;
export const RTM_GETQDISC = 38;
/** tcm_parent of a root qdisc */
export const TC_H_ROOT = 0xffffffff;
const TC_H_UNSPEC = 0;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
/** struct tcmsg: family, pad, pad, ifindex (s32), handle, parent, info */
const TCMSG_LEN = 20;
/** TCA_HTB_INIT: struct tc_htb_glob { version, rate2quantum, defcls, debug, direct_pkts } */
const TCA_HTB_INIT = 2;
const HTB_GLOB_LEN = 20;

/**
 * Where a qdisc's TCA_OPTIONS hold the `limit` tc prints as a number: a struct whose u32 at
 * `off` it is (the fifos' tc_fifo_qopt, sfq's tc_sfq_qopt, netem's tc_netem_qopt), or the
 * nested u32 attribute `attr` (the AQMs' *_LIMIT). Other kinds print no numeric limit (tbf
 * prints a latency) or one awg never reads; only the shaper's own bfifo leaves matter to it.
 */
const LIMITS: Record<string, { off: number } | { attr: number }> = {
  pfifo: { off: 0 },
  bfifo: { off: 0 },
  pfifo_head_drop: { off: 0 },
  sfq: { off: 8 },
  netem: { off: 4 },
  fq_codel: { attr: 2 }, // TCA_FQ_CODEL_LIMIT
  codel: { attr: 2 }, // TCA_CODEL_LIMIT
  pie: { attr: 2 }, // TCA_PIE_LIMIT
  fq: { attr: 1 }, // TCA_FQ_PLIMIT
  fq_pie: { attr: 1 }, // TCA_FQ_PIE_LIMIT
};

/** one RTM_NEWQDISC */
export interface QdiscMsg {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  options?: Buffer;
}

/** an entry of `tc -j qdisc show` with the keys awg reads: resources/shaper/parse.ts TcQdisc */
export interface QdiscRow {
  kind: string;
  handle: string;
  dev: string;
  root: boolean;
  parent?: string;
  default?: number;
  limit?: number;
}

/** RTM_GETQDISC dump of every device (family AF_UNSPEC; no TCA_DUMP_INVISIBLE, as `tc qdisc show`) */
export function buildGetQdiscDump(seq: number, portid = 0): Buffer {
  const tcm = Buffer.alloc(TCMSG_LEN);
  tcm.writeUInt8(AF_UNSPEC, 0);
  return buildMessage(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq, portid, tcm);
}

/** RTM_NEWQDISC → its qdisc; undefined for another message or one without a kind (tc skips it) */
export function parseQdiscMsg(m: NlMessage): QdiscMsg | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWQDISC || p.length < TCMSG_LEN) return undefined;
  const a = parseAttrs(p, TCMSG_LEN);
  const kind = cstr(a.get(TCA_KIND));
  if (kind === undefined) return undefined;
  const q: QdiscMsg = {
    ifindex: p.readInt32LE(4),
    handle: p.readUInt32LE(8),
    parent: p.readUInt32LE(12),
    kind,
  };
  const options = a.get(TCA_OPTIONS);
  // a view into the receive buffer: copied, the buffer is reused by the next receive
  if (options) q.options = Buffer.from(options);
  return q;
}

/** RTM_NEWLINK → [ifindex, name]: what tc's ll_index_to_name answers from its link map */
export function parseLinkName(m: NlMessage): [number, string] | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWLINK || p.length < 16) return undefined;
  const name = cstr(parseAttrs(p, 16).get(IFLA_IFNAME));
  return name === undefined ? undefined : [p.readInt32LE(4), name];
}

/** a class or parent id as tc's print_tc_classid writes it: `1:`, `1:11`, `:1`, `ffff:fff1` */
export function tcClassid(h: number): string {
  const h32 = h >>> 0;
  if (h32 === TC_H_ROOT) return 'root';
  if (h32 === TC_H_UNSPEC) return 'none';
  const maj = h32 >>> 16;
  const min = h32 & 0xffff;
  if (maj === 0) return `:${min.toString(16)}`;
  if (min === 0) return `${maj.toString(16)}:`;
  return `${maj.toString(16)}:${min.toString(16)}`;
}

function limitOf(kind: string, options: Buffer | undefined): number | undefined {
  const where = LIMITS[kind];
  if (!where || !options) return undefined;
  if ('off' in where)
    return options.length >= where.off + 4 ? options.readUInt32LE(where.off) : undefined;
  const v = parseAttrs(options, 0).get(where.attr);
  return v && v.length >= 4 ? v.readUInt32LE(0) : undefined;
}

/**
 * A qdisc → its entry as `tc -j qdisc show` prints it: handle `%x:` of the major (tc prints
 * no minor of a qdisc's handle), dev the link's name (`if<N>` when unknown, as tc), `root`
 * for a tcm_parent of TC_H_ROOT, else `parent` as print_tc_classid writes it (a clsact's and
 * an ingress's `ffff:fff1`, an mq child's `:1`; none for a parent of 0), the HTB's
 * `default` (defcls; tc prints it `%#x`) and a `limit` (LIMITS).
 */
export function qdiscRow(q: QdiscMsg, name: (ifindex: number) => string | undefined): QdiscRow {
  const row: QdiscRow = {
    kind: q.kind,
    handle: `${(q.handle >>> 16).toString(16)}:`,
    dev: name(q.ifindex) ?? `if${q.ifindex}`,
    root: q.parent >>> 0 === TC_H_ROOT,
  };
  if (!row.root && q.parent !== TC_H_UNSPEC) row.parent = tcClassid(q.parent);
  if (q.kind === 'htb' && q.options) {
    const init = parseAttrs(q.options, 0).get(TCA_HTB_INIT);
    if (init && init.length >= HTB_GLOB_LEN) row.default = init.readUInt32LE(8);
  }
  const limit = limitOf(q.kind, q.options);
  if (limit !== undefined) row.limit = limit;
  return row;
}

/** `tc -j qdisc show` from a qdisc dump and a link dump's names, in the qdisc dump's order */
export function qdiscRows(
  qdiscs: readonly QdiscMsg[],
  names: ReadonlyMap<number, string>,
): QdiscRow[] {
  return qdiscs.map((q) => qdiscRow(q, (i) => names.get(i)));
}
