/**
 * DNS over UDP for a proxy tunnel that cannot carry UDP (HTTP CONNECT, or SOCKS5 without
 * `udp: true`): each query that arrives on the UDP socket (the target of the firewall's
 * UDP/53 redirect) is sent as DNS over TCP (RFC 1035 §4.2.2, RFC 7766) to the tunnel's
 * resolver through the proxy (a Dialer: SOCKS5 CONNECT / HTTP CONNECT), and the resolver's
 * answer goes back to the client over UDP. No query leaves the host over UDP.
 *
 * Why not answer TC=1 and let the client repeat over TCP: glibc's stub resolver takes an
 * empty TC=1 answer without RA for a lame server and moves on (never retrying over TCP), and
 * musl before 1.2.4 never retries over TCP at all. An answer larger than the client takes
 * (512 bytes, or its EDNS payload size) is cut at a record boundary with TC=1
 * (dns-message.ts `fitUdp`): glibc repeats over TCP (the firewall redirects that into the
 * transparent proxy, which sends it to the same resolver), musl keeps what fits.
 *
 * One TCP connection at a time, queries pipelined on it (RFC 7766 §6.2.1.1) under ids of our
 * own (clients' ids collide; a reply is matched by our id and must carry the question asked,
 * dns-message.ts `isAnswerTo`), closed after `idleMs` without a query in flight. A query
 * whose connection closes before its answer is sent once more on a new connection (the
 * resolver may close an idle connection just as we write); a failed dial, a second loss or
 * `timeoutMs` without an answer is answered SERVFAIL, so the client fails fast instead of
 * waiting for its own timeout. At most `maxInFlight` queries wait; the rest are dropped.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { fitUdp, isAnswerTo, parseQuery, servfail, type DnsQuery } from './dns-message.js';
import { bindUdp, type Destination, type Dialer } from './types.js';

export interface DnsTcpForwarderOptions {
  listen: { host: string; port: number };
  /** the tunnel's resolver (port 53) */
  resolver: Destination;
  /** through the tunnel's upstream (with its fallback policy) */
  dial: Dialer;
  /** per query (default 4 s: below the 5 s most stub resolvers wait) */
  timeoutMs?: number;
  /** close the TCP connection after this long with nothing in flight (default 10 s) */
  idleMs?: number;
  /** queries waiting for an answer (default 256) */
  maxInFlight?: number;
}

export type DnsForwardErrorKind =
  'malformed' | 'limit' | 'dial' | 'timeout' | 'lost' | 'bad-answer';

export interface DnsTcpForwarderStats {
  queries: number;
  answered: number;
  /** answers cut to the client's UDP size (TC=1) */
  truncated: number;
  servfail: number;
  /** TCP connections opened through the proxy */
  connections: number;
  errors: Partial<Record<DnsForwardErrorKind, number>>;
}

interface Pending {
  q: DnsQuery;
  rd: boolean;
  /** the query as received, sent under our id */
  raw: Buffer;
  client: { address: string; port: number };
  timer: NodeJS.Timeout;
  tries: number;
  conn?: Conn;
  ourId?: number;
}

interface Conn {
  stream?: Duplex;
  abort: AbortController;
  closed: boolean;
  buf: Buffer;
  inflight: Map<number, Pending>;
  idle?: NodeJS.Timeout | undefined;
}

export class DnsTcpForwarder extends EventEmitter<{ error: [Error] }> {
  private sock: UdpSocket | undefined;
  private conn: Conn | undefined;
  private readonly pending = new Set<Pending>();
  private readonly o: Required<DnsTcpForwarderOptions>;
  private readonly st: DnsTcpForwarderStats = {
    queries: 0,
    answered: 0,
    truncated: 0,
    servfail: 0,
    connections: 0,
    errors: {},
  };

  constructor(o: DnsTcpForwarderOptions) {
    super();
    this.o = {
      ...o,
      timeoutMs: o.timeoutMs ?? 4000,
      idleMs: o.idleMs ?? 10_000,
      maxInFlight: o.maxInFlight ?? 256,
    };
  }

  async start(): Promise<{ address: string; port: number }> {
    const s = createSocket({ type: isIP(this.o.listen.host) === 6 ? 'udp6' : 'udp4' });
    this.sock = s;
    s.on('message', (m, r) => this.onQuery(m, r));
    s.on('error', (e) => this.emit('error', e));
    return bindUdp(s, this.o.listen);
  }

  address(): { address: string; port: number } | undefined {
    return this.sock?.address();
  }

  async close(): Promise<void> {
    for (const p of [...this.pending]) this.settle(p);
    if (this.conn) this.endConn(this.conn);
    const s = this.sock;
    this.sock = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  stats(): DnsTcpForwarderStats {
    return structuredClone(this.st);
  }

  private count(k: DnsForwardErrorKind): void {
    this.st.errors[k] = (this.st.errors[k] ?? 0) + 1;
  }

  private onQuery(m: Buffer, from: RemoteInfo): void {
    const q = parseQuery(m);
    if (!q) return this.count('malformed');
    if (this.pending.size >= this.o.maxInFlight) return this.count('limit');
    this.st.queries++;
    const p: Pending = {
      q,
      rd: (m.readUInt16BE(2) & 0x0100) !== 0,
      raw: Buffer.from(m),
      client: { address: from.address, port: from.port },
      timer: setTimeout(() => this.fail(p, 'timeout'), this.o.timeoutMs),
      tries: 0,
    };
    this.pending.add(p);
    this.send(p);
  }

  /** Puts `p` on the current connection (opening one when there is none). */
  private send(p: Pending): void {
    p.tries++;
    const c = this.conn && !this.conn.closed ? this.conn : this.openConn();
    let id = (Math.random() * 0x10000) | 0;
    while (c.inflight.has(id)) id = (id + 1) & 0xffff;
    p.conn = c;
    p.ourId = id;
    c.inflight.set(id, p);
    if (c.idle) {
      clearTimeout(c.idle);
      c.idle = undefined;
    }
    if (c.stream) this.write(c, p);
  }

  private write(c: Conn, p: Pending): void {
    const frame = Buffer.alloc(2 + p.raw.length);
    frame.writeUInt16BE(p.raw.length, 0);
    p.raw.copy(frame, 2);
    frame.writeUInt16BE(p.ourId!, 2);
    c.stream!.write(frame);
  }

  private openConn(): Conn {
    const c: Conn = {
      closed: false,
      abort: new AbortController(),
      buf: Buffer.alloc(0),
      inflight: new Map(),
    };
    this.conn = c;
    this.st.connections++;
    this.o.dial(this.o.resolver, { signal: c.abort.signal }).then(
      (s) => {
        if (c.closed) {
          s.destroy();
          return;
        }
        c.stream = s;
        s.on('data', (d: Buffer) => this.onData(c, d));
        s.on('error', () => this.lose(c));
        s.on('close', () => this.lose(c));
        s.on('end', () => this.lose(c));
        // a dialer may hand the stream over paused (HTTP CONNECT does): a 'data' listener alone does not start it
        s.resume();
        for (const p of c.inflight.values()) this.write(c, p);
      },
      () => {
        // the tunnel is down (or blocks): everything waiting on this connection fails now
        c.closed = true;
        if (this.conn === c) this.conn = undefined;
        for (const p of [...c.inflight.values()]) this.fail(p, 'dial');
        c.inflight.clear();
      },
    );
    return c;
  }

  private onData(c: Conn, d: Buffer): void {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    while (c.buf.length >= 2) {
      const n = c.buf.readUInt16BE(0);
      if (c.buf.length < 2 + n) break;
      const r = Buffer.from(c.buf.subarray(2, 2 + n));
      c.buf = c.buf.subarray(2 + n);
      const p = n >= 2 ? c.inflight.get(r.readUInt16BE(0)) : undefined;
      if (!p || !isAnswerTo(r, p.q, p.ourId)) {
        // not an answer to anything we asked on this connection: ignored (the query times out)
        this.count('bad-answer');
        continue;
      }
      c.inflight.delete(p.ourId!);
      r.writeUInt16BE(p.q.id, 0);
      const out = fitUdp(r, p.q.udpLimit);
      if (out !== r) this.st.truncated++;
      this.st.answered++;
      this.reply(p, out);
    }
    this.idleCheck(c);
  }

  private idleCheck(c: Conn): void {
    if (c.inflight.size === 0 && !c.closed && !c.idle)
      c.idle = setTimeout(() => this.endConn(c), this.o.idleMs).unref();
  }

  /** the connection ended: what it still carried is sent once more, or fails */
  private lose(c: Conn): void {
    if (c.closed) return;
    this.endConn(c);
    for (const p of [...c.inflight.values()]) {
      if (!this.pending.has(p)) continue;
      if (p.tries < 2) this.send(p);
      else this.fail(p, 'lost');
    }
    c.inflight.clear();
  }

  private endConn(c: Conn): void {
    c.closed = true;
    if (c.idle) clearTimeout(c.idle);
    if (this.conn === c) this.conn = undefined;
    c.abort.abort();
    c.stream?.destroy();
  }

  private fail(p: Pending, why: DnsForwardErrorKind): void {
    if (!this.pending.has(p)) return;
    this.count(why);
    if (p.conn?.inflight.get(p.ourId!) === p) {
      p.conn.inflight.delete(p.ourId!);
      if (p.conn.stream) this.idleCheck(p.conn);
    }
    this.st.servfail++;
    this.reply(p, servfail(p.q, p.rd));
  }

  private reply(p: Pending, data: Buffer): void {
    this.settle(p);
    this.sock?.send(data, p.client.port, p.client.address);
  }

  private settle(p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(p);
  }
}
