/**
 * A stub resolver for host names whose queries carry an SO_MARK from their first packet: the
 * bypass mark lets them out under the kill switch, which drops the unmarked queries of
 * getaddrinfo (docs/platform-linux.md#so_mark; the nft table admits bypass-marked DNS to exactly the
 * servers asked here). A and AAAA over UDP, again over TCP when an answer is truncated; the
 * servers in order, the next one when one fails or stays silent. Replies are accepted only
 * from the server's address and port 53 with our id and question (util/dns-wire.ts); the
 * source port is the kernel's random ephemeral port and the id is random.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { AwgError } from '../errors.js';
import {
  buildQuery,
  isQueryName,
  parseAnswer,
  TYPE_A,
  TYPE_AAAA,
  type AnswerResult,
  type QueryType,
} from '../util/dns-wire.js';
import { markDgram } from './sockmark.js';
import { connectTcp } from './tcpsock.js';

/** How a socket is held to one link (resources/engine/link-pin.ts makes them per platform). */
export interface SocketPin {
  /** a fresh unconnected TCP socket fd of `family` that sends only through the link */
  tcpFd(family: 4 | 6): number;
  /** a bound, not yet sending, dgram socket of `family` sends only through the link */
  dgram(sock: Socket, family: 4 | 6): void;
}

export interface DirectQueryOptions {
  /** resolver addresses (IP literals), asked in order */
  servers: string[];
  /** SO_MARK of every query socket (needs CAP_NET_ADMIN); undefined: unmarked */
  mark?: number;
  /**
   * send every query through this link only (a tunnel's own resolvers): its pin
   * (resources/engine/link-pin.ts: SO_BINDTODEVICE on Linux, IP_BOUND_IF on macOS)
   */
  pin?: SocketPin | undefined;
  /** per server and transport; default 1500 ms */
  timeoutMs?: number;
  /** default 53 (tests use another) */
  port?: number;
}

interface Question {
  id: number;
  type: QueryType;
}

const TIMEOUT: AnswerResult = { kind: 'error', rcode: -1 };

/** Both questions to `server` over one UDP socket: their results, `TIMEOUT` for a silent one. */
async function overUdp(
  name: string,
  server: string,
  qs: Question[],
  o: DirectQueryOptions,
): Promise<AnswerResult[]> {
  const family = isIP(server);
  const port = o.port ?? 53;
  const sock: Socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  const results: (AnswerResult | undefined)[] = qs.map(() => undefined);
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  sock.on('error', () => finish());
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port !== port || rinfo.address.replace(/^::ffff:/, '') !== server) return;
    qs.forEach((q, i) => {
      if (results[i]) return;
      const r = parseAnswer(msg, q.id, name, q.type);
      if (r.kind !== 'mismatch') results[i] = r;
    });
    if (results.every(Boolean)) finish();
  });
  const timer = setTimeout(finish, o.timeoutMs ?? 1500);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    if (o.mark !== undefined) markDgram(sock, o.mark);
    if (o.pin !== undefined) o.pin.dgram(sock, family === 6 ? 6 : 4);
    for (const q of qs) sock.send(buildQuery(q.id, name, q.type), port, server);
    await done;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
  return results.map((r) => r ?? TIMEOUT);
}

/** One question to `server` over TCP (after a truncated UDP answer). */
async function overTcp(
  name: string,
  server: string,
  q: Question,
  o: DirectQueryOptions,
): Promise<AnswerResult> {
  const timeoutMs = o.timeoutMs ?? 1500;
  const s = await connectTcp({
    host: server,
    port: o.port ?? 53,
    timeoutMs,
    ...(o.mark !== undefined ? { mark: o.mark } : {}),
    ...(o.pin !== undefined ? { socketFd: (f: 4 | 6) => o.pin!.tcpFd(f) } : {}),
  }).catch(() => undefined);
  if (!s) return TIMEOUT;
  return await new Promise<AnswerResult>((resolve) => {
    let buf = Buffer.alloc(0);
    const end = (r: AnswerResult) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => end(TIMEOUT), timeoutMs);
    s.on('error', () => end(TIMEOUT));
    s.on('close', () => end(TIMEOUT));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 2 + 65535) return end({ kind: 'malformed' });
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const r = parseAnswer(buf.subarray(2, 2 + buf.readUInt16BE(0)), q.id, name, q.type);
      end(r.kind === 'mismatch' || r.kind === 'truncated' ? { kind: 'malformed' } : r);
    });
    const query = buildQuery(q.id, name, q.type);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length);
    s.write(Buffer.concat([len, query]));
  });
}

/**
 * The IPv4 then IPv6 addresses of `name` from the first server that answers. Rejects with
 * AwgError('driver') when the name does not exist (NXDOMAIN), has no address, or no server
 * answered.
 */
export async function resolveDirect(name: string, o: DirectQueryOptions): Promise<string[]> {
  if (!isQueryName(name))
    throw new AwgError('driver', `cannot look up ${JSON.stringify(name)}: not a host name`);
  const servers = o.servers.filter((s) => isIP(s) !== 0);
  if (servers.length === 0)
    throw new AwgError('driver', `cannot look up ${name}: no resolver to ask`);
  const failures: string[] = [];
  for (const server of servers) {
    const a = randomInt(0x10000);
    const qs: Question[] = [
      { id: a, type: TYPE_A },
      { id: (a + 1 + randomInt(0xffff)) & 0xffff, type: TYPE_AAAA },
    ];
    let rs: AnswerResult[];
    try {
      rs = await overUdp(name, server, qs, o);
    } catch (e) {
      failures.push(`${server}: ${(e as Error).message}`);
      continue;
    }
    for (let i = 0; i < qs.length; i++)
      if (rs[i]!.kind === 'truncated') rs[i] = await overTcp(name, server, qs[i]!, o);
    if (rs.some((r) => r.kind === 'nxdomain'))
      throw new AwgError('driver', `${name}: no such name (NXDOMAIN from ${server})`);
    const answered = rs.filter(
      (r): r is Extract<AnswerResult, { kind: 'answer' }> => r.kind === 'answer',
    );
    const addresses = answered.flatMap((r) => r.addresses);
    if (addresses.length) return addresses;
    if (answered.length === rs.length)
      throw new AwgError('driver', `${name}: no address (from ${server})`);
    failures.push(
      `${server}: ${rs.map((r) => (r === TIMEOUT ? 'no answer' : r.kind === 'error' ? `rcode ${r.rcode}` : r.kind)).join(', ')}`,
    );
  }
  throw new AwgError('driver', `cannot look up ${name}: ${failures.join('; ')}`);
}
