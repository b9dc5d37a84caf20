/**
 * SOCK_DESTROY (sock_diag(7), CONFIG_INET_DIAG_DESTROY): abort a local TCP socket as
 * `ss -K` does. The kernel's tcp_abort sends the peer a RST (when the state has one to send)
 * and fails the socket with ECONNABORTED, so its owner sees an error at once instead of
 * waiting on a path that is gone. Needs CAP_NET_ADMIN.
 *
 * Request: nlmsghdr type SOCK_DESTROY (21), NLM_F_REQUEST|NLM_F_ACK, then struct
 * inet_diag_req_v2 whose sockid (48 bytes @8: sport, dport, src, dst, if, cookie) is the
 * socket's own as a dump reported it (inet_diag_msg @4); the kernel looks the socket up by
 * the tuple and checks the cookie, so a socket that closed meanwhile is ENOENT, never another.
 */
import { AF_INET, AF_INET6, buildMessage, NLM_F_ACK, NLM_F_REQUEST } from './rtnl.js';
import { NetlinkSocket } from './netlink.js';
import {
  IPPROTO_TCP,
  NETLINK_SOCK_DIAG,
  TCP_STATE,
  buildInetDiagDump,
  parseInetDiag,
  type InetSocket,
} from './sockdiag.js';

export const SOCK_DESTROY = 21;

/** states with a connection to abort (not LISTEN, TIME_WAIT, request sockets) */
export const ABORTABLE_STATES = [
  TCP_STATE.ESTABLISHED,
  TCP_STATE.SYN_SENT,
  TCP_STATE.FIN_WAIT1,
  TCP_STATE.FIN_WAIT2,
  TCP_STATE.CLOSE_WAIT,
  TCP_STATE.LAST_ACK,
  TCP_STATE.CLOSING,
].reduce((m, s) => m | (1 << s), 0);

/** the destroy request for a socket whose inet_diag_msg sockid is `sockid` (48 bytes) */
export function buildSockDestroy(family: 4 | 6, sockid: Buffer, seq: number, portid = 0): Buffer {
  const req = Buffer.alloc(56);
  req.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  req.writeUInt8(IPPROTO_TCP, 1);
  req.writeUInt32LE(ABORTABLE_STATES >>> 0, 4);
  sockid.copy(req, 8, 0, 48);
  return buildMessage(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, portid, req);
}

export interface DestroyResult {
  destroyed: InetSocket[];
  /** sockets that could not be destroyed, with the errno (ENOENT: closed meanwhile) */
  failed: { socket: InetSocket; errno: number }[];
}

/**
 * Destroys every TCP socket of the namespace (both families) with a connection that `pick`
 * chooses.
 */
export function destroyTcpSockets(pick: (s: InetSocket) => boolean, netns?: string): DestroyResult {
  const sock = NetlinkSocket.open({ protocol: NETLINK_SOCK_DIAG, netns });
  const out: DestroyResult = { destroyed: [], failed: [] };
  try {
    for (const family of [4, 6] as const) {
      const dump = buildInetDiagDump(family, 'tcp', sock.nextSeq(), sock.portid, {
        states: ABORTABLE_STATES,
        info: false,
      });
      const rows = sock.dump(dump, (m) => {
        const s = parseInetDiag(m, 'tcp');
        return s ? { s, id: Buffer.from(m.payload.subarray(4, 52)) } : undefined;
      });
      for (const { s, id } of rows) {
        if (!pick(s)) continue;
        try {
          sock.request(buildSockDestroy(family, id, sock.nextSeq(), sock.portid));
          out.destroyed.push(s);
        } catch (e) {
          out.failed.push({ socket: s, errno: (e as { errno?: number }).errno ?? -1 });
        }
      }
    }
  } finally {
    sock.close();
  }
  return out;
}
