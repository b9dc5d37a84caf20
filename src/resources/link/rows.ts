/**
 * The rows of `ip -j -d link show` and `ip -j -d addr show` (LINK_READ, ADDR_READ), read over
 * rtnetlink in this process when `exec` runs its commands on this host (one link dump, and an
 * address dump for the addresses: native/rtnl-links.ts turns the replies into the rows
 * iproute2 prints, with the keys awg reads), else by the `ip` process through `exec`. The
 * link, address and shaper drivers read links through here (a process start costs 5–30 ms
 * quiet and several times that on a loaded host; an apply ran up to six of these).
 * test/netns/link-rows.test.ts compares both paths on the real kernel.
 */
import { readFileSync } from 'node:fs';
import type { Exec } from '../../util/exec.js';
import { ADDR_READ, LINK_READ } from '../reads.js';
import { runsOnHost } from '../prefetch.js';
import type { IpLinkJson } from './parse.js';

/** `ip -j` output → its rows */
export function rowsOfJson(text: string, what: string): IpLinkJson[] {
  const t = text.trim();
  if (!t) return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error(`${what}: expected a JSON array`);
  return v as IpLinkJson[];
}

/** name → id of /etc/passwd or /etc/group (getpwuid/getgrgid's answer on a host without other NSS sources) */
function idNames(path: string): Map<number, string> {
  const m = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return m;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const id = Number(f[2]);
    if (f.length >= 3 && f[0] && f[2] !== '' && Number.isInteger(id) && !m.has(id)) m.set(id, f[0]);
  }
  return m;
}

/**
 * The rows in this process (`netns`: in that network namespace, tests), `addrs`: with each
 * link's `addr_info` (`ip addr show`). Throws when no netlink socket opens.
 */
export async function netlinkLinkRows(addrs: boolean, netns?: string): Promise<IpLinkJson[]> {
  const [{ NetlinkSocket, dumpConsistent }, { buildGetAddrDump, buildGetLinkDump }, rl] =
    await Promise.all([
      import('../../native/netlink.js'),
      import('../../native/rtnl.js'),
      import('../../native/rtnl-links.js'),
    ]);
  const sock = NetlinkSocket.open(netns !== undefined ? { netns } : {});
  try {
    // a dump the kernel interrupts (NLM_F_DUMP_INTR: a concurrent change) is read again
    const links = dumpConsistent(
      sock,
      (seq) => buildGetLinkDump(seq, sock.portid),
      rl.parseLinkMsg,
    );
    const addresses = addrs
      ? dumpConsistent(sock, (seq) => buildGetAddrDump(seq, 0, sock.portid), rl.parseAddrMsg)
      : undefined;
    let users: Map<number, string> | undefined;
    let groups: Map<number, string> | undefined;
    return rl.linkRows(
      links,
      addresses,
      (uid) => (users ??= idNames('/etc/passwd')).get(uid),
      (gid) => (groups ??= idNames('/etc/group')).get(gid),
    ) as IpLinkJson[];
  } finally {
    sock.close();
  }
}

/**
 * `ip -j -d link show` (`addrs`: `ip -j -d addr show`) as rows: in this process when `exec`
 * runs on this host and a netlink socket opens, else by `ip` through `exec`.
 */
export async function readLinkRows(
  exec: Pick<Exec, 'read'>,
  addrs: boolean,
): Promise<IpLinkJson[]> {
  if (runsOnHost(exec)) {
    try {
      return await netlinkLinkRows(addrs);
    } catch {
      // no socket (a sandbox without netlink): the process below says what is wrong
    }
  }
  const [cmd, args] = addrs ? ADDR_READ : LINK_READ;
  const r = await exec.read(cmd, [...args]);
  return rowsOfJson(r.stdout, `ip -j ${addrs ? 'addr' : 'link'}`);
}
