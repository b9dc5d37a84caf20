/**
 * The qdiscs of `tc -j qdisc show` (TC_QDISC_READ) as the shaper reads them, read over
 * rtnetlink in this process when `exec` runs its commands on this host (a link dump for the
 * device names, as tc's own link map, then an RTM_GETQDISC dump: native/rtnl-qdisc.ts turns
 * the replies into the entries tc prints), else by the `tc` process through `exec`. Every
 * apply observes the shaper, limits or not: this takes the last `tc` process out of an apply
 * of a config without limits (a process start costs 5–30 ms quiet and several times that on
 * a loaded host). test/netns/qdisc-rows.test.ts compares both paths on the real kernel.
 */
import type { Exec } from '../../util/exec.js';
import { runsOnHost } from '../prefetch.js';
import { TC_QDISC_READ } from '../reads.js';
import { parseQdiscJson, type TcQdisc } from './parse.js';

/** The qdiscs in this process (`netns`: in that network namespace, tests). Throws when no netlink socket opens. */
export async function netlinkQdiscs(netns?: string): Promise<TcQdisc[]> {
  const [{ NetlinkSocket, dumpConsistent }, { buildGetLinkDump }, rq] = await Promise.all([
    import('../../native/netlink.js'),
    import('../../native/rtnl.js'),
    import('../../native/rtnl-qdisc.js'),
  ]);
  const sock = NetlinkSocket.open(netns !== undefined ? { netns } : {});
  try {
    const names = () =>
      new Map(dumpConsistent(sock, (seq) => buildGetLinkDump(seq, sock.portid), rq.parseLinkName));
    let byIndex = names();
    const qdiscs = dumpConsistent(
      sock,
      (seq) => rq.buildGetQdiscDump(seq, sock.portid),
      rq.parseQdiscMsg,
    );
    // a link made between the two dumps: tc asks the kernel for a name it has not mapped
    if (qdiscs.some((q) => !byIndex.has(q.ifindex))) byIndex = names();
    return rq.qdiscRows(qdiscs, byIndex);
  } finally {
    sock.close();
  }
}

/**
 * `tc -j qdisc show` as the shaper's entries: in this process when `exec` runs on this host
 * and a netlink socket opens, else by `tc` through `exec`.
 */
export async function readQdiscs(exec: Pick<Exec, 'read'>): Promise<TcQdisc[]> {
  if (runsOnHost(exec)) {
    try {
      return await netlinkQdiscs();
    } catch {
      // no socket (a sandbox without netlink): the process below says what is wrong
    }
  }
  const r = await exec.read(TC_QDISC_READ[0], [...TC_QDISC_READ[1]]);
  return parseQdiscJson(r.stdout);
}
