/**
 * The DNS stub's kernel side on Linux: where a redirected query was going and the routing
 * decision it carries (conntrack), and the set writer (nf_tables netlink).
 *
 * - UDP: `redirect` rewrote the destination to our listener; the conntrack entry's reply
 *   tuple is (listener → application), found by one IPCTNL_MSG_CT_GET; its original tuple
 *   names the resolver the application asked, and its mark is route_out's decision (route_out
 *   runs at mangle priority, before nat_out's redirect, so the mark is there already).
 * - TCP: SO_ORIGINAL_DST on the accepted socket, then the entry by its original tuple for the
 *   mark.
 */
import type { Socket } from 'node:net';
import {
  buildCtGet,
  dumpConntrack,
  getConntrack,
  openConntrack,
  redirectedUdpEntry,
} from '../../native/conntrack.js';
import type { NetlinkSocket } from '../../native/netlink.js';
import { openSetWriter } from '../../native/nftset.js';
import { originalDst } from '../../native/origdst.js';
import type { DnsStubDeps, QueryOrigin } from './stub.js';

const TCP = 6;
const UDP = 17;
/** TCP_CONNTRACK_SYN_SENT 1 … ESTABLISHED 3: a connection that is opening or open */
const TCP_OPEN_MAX = 3;

const canon = (a: string) => a.replace(/^::ffff:(?=\d+\.)/, '');

function socketFd(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('accepted socket has no fd');
  return fd;
}

export interface LinuxStubOptions {
  /** network namespace of the conntrack/nftables sockets (default: ours) */
  netns?: string | undefined;
}

/** The kernel-backed dependencies of a DnsStub. */
export function linuxStubDeps(o: LinuxStubOptions = {}): DnsStubDeps & { close(): void } {
  let ct: NetlinkSocket | undefined;
  const sock = () => (ct ??= openConntrack(o.netns));
  /** the entry by its original tuple */
  const get = (
    family: 4 | 6,
    proto: number,
    t: { src: string; sport: number; dst: string; dport: number },
  ) => {
    const s = sock();
    const [e] = getConntrack(s, [buildCtGet({ family, proto, orig: t }, 0, s.portid)]);
    return e ?? undefined;
  };
  return {
    marks: true,
    now: () => performance.now(),
    udpOrigin(p): QueryOrigin | undefined {
      const e = redirectedUdpEntry(sock(), p);
      return e ? { addr: e.orig.dst, port: e.orig.dport, mark: e.mark ?? 0 } : undefined;
    },
    tcpOrigin(s): QueryOrigin | undefined {
      const family = s.remoteFamily === 'IPv6' && !s.remoteAddress?.startsWith('::ffff:') ? 6 : 4;
      const d = originalDst(socketFd(s), family);
      const e = get(family, TCP, {
        src: canon(s.remoteAddress ?? ''),
        sport: s.remotePort ?? 0,
        dst: d.address,
        dport: d.port,
      });
      return { addr: d.address, port: d.port, mark: e?.mark ?? 0 };
    },
    openWriter: (table) => openSetWriter({ table, netns: o.netns }),
    openDestinations() {
      const out = new Set<string>();
      for (const e of dumpConntrack(sock())) {
        if (e.proto === TCP && (e.tcpState ?? 0) > TCP_OPEN_MAX) continue;
        if (e.proto !== TCP && e.proto !== UDP) continue;
        if (e.orig.dport === 53) continue;
        out.add(e.orig.dst);
      }
      return out;
    },
    close() {
      ct?.close();
      ct = undefined;
    },
  };
}
