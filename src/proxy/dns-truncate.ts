/**
 * DNS over UDP for a proxy tunnel that cannot carry UDP (HTTP CONNECT, or SOCKS5 without
 * `udp: true`): every query is answered locally with an empty response that has the TC
 * (truncated) bit set. RFC 1035 §4.2.1 / RFC 7766: a client that gets TC=1 repeats the query
 * over TCP; the firewall redirects that TCP into the transparent proxy, which sends it to the
 * tunnel's resolver through the proxy. No query leaves the host over UDP.
 *
 * `truncatedAnswer` is pure; `DnsTruncator` is the socket around it.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { bindUdp } from './types.js';

const HEADER = 12;

/** End offset of the first question (name + type + class), or -1 if malformed. */
function questionEnd(q: Buffer): number {
  let o = HEADER;
  for (let hops = 0; hops < 128; hops++) {
    if (o >= q.length) return -1;
    const len = q[o]!;
    if (len === 0) return o + 1 + 4 <= q.length ? o + 1 + 4 : -1;
    // a question name is never compressed (there is nothing before it to point at)
    if (len & 0xc0) return -1;
    o += 1 + len;
  }
  return -1;
}

/**
 * The TC=1 answer to a DNS query: same id, opcode, RD and question, QR=1, no records.
 * undefined for what is not a standard query (responses, malformed packets), which is
 * dropped.
 */
export function truncatedAnswer(query: Buffer): Buffer | undefined {
  if (query.length < HEADER) return undefined;
  const flags = query.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  const qd = query.readUInt16BE(4);
  const end = qd === 1 ? questionEnd(query) : qd === 0 ? HEADER : -1;
  if (end < 0) return undefined;
  const out = Buffer.alloc(end);
  query.copy(out, 0, 0, end);
  // QR=1, keep OPCODE and RD, TC=1, RA=0, Z/AD/CD=0, RCODE=0
  out.writeUInt16BE(0x8000 | (flags & 0x7800) | 0x0200 | (flags & 0x0100), 2);
  out.writeUInt16BE(qd, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

export interface DnsTruncatorStats {
  queries: number;
  dropped: number;
}

export class DnsTruncator extends EventEmitter<{ error: [Error] }> {
  private sock: UdpSocket | undefined;
  private readonly st: DnsTruncatorStats = { queries: 0, dropped: 0 };

  constructor(private readonly listen: { host: string; port: number }) {
    super();
  }

  async start(): Promise<{ address: string; port: number }> {
    const s = createSocket({ type: isIP(this.listen.host) === 6 ? 'udp6' : 'udp4' });
    this.sock = s;
    s.on('message', (m, r) => {
      const a = truncatedAnswer(m);
      if (!a) {
        this.st.dropped++;
        return;
      }
      this.st.queries++;
      s.send(a, r.port, r.address);
    });
    s.on('error', (e) => this.emit('error', e));
    return bindUdp(s, this.listen);
  }

  address(): { address: string; port: number } | undefined {
    return this.sock?.address();
  }

  async close(): Promise<void> {
    const s = this.sock;
    this.sock = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  stats(): DnsTruncatorStats {
    return { ...this.st };
  }
}
