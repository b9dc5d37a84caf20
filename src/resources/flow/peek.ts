/**
 * Reading a client's first bytes before its connection is routed (the flow router's domain
 * rules): the name it asks for (util/first-bytes.ts: TLS SNI, HTTP Host).
 *
 * The bytes read are consumed from the socket and handed back in `bytes`: the caller writes
 * them to the upstream first, before it pipes the rest (so a client that sent everything and
 * half-closed meanwhile loses nothing; no unshift after the stream's end). Bounded: at most
 * MAX_SNIFF_BYTES are kept, and after `timeoutMs` without a decision (a protocol where the
 * server speaks first, a slow client) the name is `undefined` with whatever came. The socket
 * is paused again when this resolves; it never rejects.
 */
import type { Socket } from 'node:net';
import { MAX_SNIFF_BYTES, sniffName, type Sniffed } from '../../util/first-bytes.js';

export interface Peeked {
  name?: string;
  via?: 'sni' | 'host';
  bytes: Buffer;
  /** why there is no name: the bytes say none, the time ran out, the client ended or closed */
  end?: 'none' | 'timeout' | 'eof';
}

export function peekName(sock: Socket, o: { timeoutMs: number }): Promise<Peeked> {
  return new Promise<Peeked>((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (r: Sniffed | 'timeout' | 'eof') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEof);
      sock.off('close', onEof);
      sock.pause();
      const bytes = Buffer.concat(chunks, total);
      if (typeof r === 'string') resolve({ bytes, end: r });
      else if (r.state === 'name') resolve({ name: r.name, via: r.via, bytes });
      else resolve({ bytes, end: 'none' });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      const r = sniffName(
        total > MAX_SNIFF_BYTES
          ? Buffer.concat(chunks, total).subarray(0, MAX_SNIFF_BYTES)
          : Buffer.concat(chunks, total),
      );
      if (r.state !== 'more' || total >= MAX_SNIFF_BYTES)
        finish(r.state === 'more' ? { state: 'none' } : r);
    };
    const onEof = () => finish('eof');
    const timer = setTimeout(() => finish('timeout'), o.timeoutMs);
    if (sock.destroyed || sock.readableEnded) return finish('eof');
    sock.on('data', onData);
    sock.once('end', onEof);
    sock.once('close', onEof);
    sock.resume();
  });
}
