/**
 * Fuzz targets of the proxy upstream parsers (src/proxy/http-connect.ts, socks5.ts over the
 * `socks` package) and the local DNS answer builder (src/proxy/dns-truncate.ts).
 *
 * proxy/http-status     arbitrary status lines → a 3-digit status or a ProxyDialError.
 * proxy/http-connect    arbitrary proxy answers, cut into arbitrary chunks, on an in-memory
 *                       stream → the CONNECT handshake resolves only on a 2xx status line
 *                       whose header ends within 16 KiB, hands back the bytes after the
 *                       header unchanged, and otherwise rejects with a ProxyDialError.
 * proxy/socks5          a loopback proxy answering (lock-step) arbitrary bytes or mutated
 *                       valid SOCKS5 replies → the dialer resolves only when the answer is a valid
 *                       method choice (+ RFC 1929 success) and a success reply, and
 *                       otherwise rejects with a ProxyDialError.
 * proxy/dns             arbitrary datagrams → no answer, or a TC=1 answer with the query's
 *                       id, opcode, RD and first question and no records; every generated
 *                       valid query gets exactly that answer.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { truncatedAnswer } from '../../src/proxy/dns-truncate.js';
import { httpConnectHandshake, parseConnectResponse } from '../../src/proxy/http-connect.js';
import { socks5Dialer } from '../../src/proxy/socks5.js';
import { ProxyDialError } from '../../src/proxy/types.js';
import { bytes, nastyString } from './arbitraries.js';
import { fc, fuzzAsync, fuzzSync, testTimeout } from './runner.js';

const MAX_HEADER = 16 * 1024;
const DST = { host: 'example.com', port: 443 };

// ---------------------------------------------------------------------------------------
// HTTP CONNECT

const statusLine = fc.oneof(
  fc.tuple(fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.10', ''), fc.oneof(fc.integer({ min: 0, max: 999 }).map(String), fc.constantFrom('200', '2000', '20', ' 200', '+20', '2e2', '')), fc.oneof(fc.constant(''), fc.constantFrom(' OK', ' Connection established', ' ', '  x'), nastyString.map((s) => ` ${s}`)))
    .map(([v, c, r]) => `${v} ${c}${r}`),
  nastyString,
);
const headerLines = fc.array(fc.oneof(fc.constantFrom('Proxy-Agent: x', 'Content-Length: 5', 'Connection: close', ''), nastyString.filter((s) => !s.includes('\r\n'))), { maxLength: 4 });
const answer = fc
  .tuple(statusLine, headerLines, fc.constantFrom('\r\n\r\n', '\n\n', '\r\n', ''), bytes(0, 64), fc.nat({ max: 3 }))
  .map(([s, h, end, rest, big]) => {
    const pad = big === 3 ? [`X-Pad: ${'p'.repeat(MAX_HEADER)}`] : [];
    return Buffer.concat([Buffer.from([s, ...h, ...pad].join('\r\n') + end, 'latin1'), Buffer.from(rest)]);
  });

/** What the handshake must do with these chunks (the reference, written independently). */
function expected(chunks: Buffer[]): { ok: true; rest: Buffer } | { ok: false } {
  let buf = Buffer.alloc(0);
  for (const c of chunks) {
    buf = Buffer.concat([buf, c]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEADER) return { ok: false };
      continue;
    }
    const line = buf.subarray(0, end).toString('latin1').split('\r\n')[0]!;
    // a reason phrase holds no line break (RFC 9112 §4: HTAB, SP, VCHAR, obs-text)
    const m = /^HTTP\/1\.[01] ([0-9]{3})(?: [^\r\n]*)?$/.exec(line);
    if (!m || m[1]![0] !== '2') return { ok: false };
    return { ok: true, rest: Buffer.concat(chunks).subarray(end + 4) };
  }
  return { ok: false };
}

function cut(b: Buffer, at: number[]): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  for (const n of at) {
    if (i >= b.length) break;
    out.push(b.subarray(i, i + n + 1));
    i += n + 1;
  }
  if (i < b.length) out.push(b.subarray(i));
  return out;
}

// ---------------------------------------------------------------------------------------
// SOCKS5

/** A valid server side of RFC 1928/1929 for the dialer's request. */
const validReply = fc.record({
  auth: fc.boolean(),
  atyp: fc.constantFrom(1, 3, 4),
  host: fc.stringMatching(/^[a-z]{1,20}$/),
  addr: bytes(16, 16),
  port: fc.nat({ max: 65535 }),
});
function replyBytes(r: { auth: boolean; atyp: number; host: string; addr: Uint8Array; port: number }): Buffer {
  const method = Buffer.from([5, r.auth ? 2 : 0]);
  const auth = r.auth ? Buffer.from([1, 0]) : Buffer.alloc(0);
  const bnd = r.atyp === 1 ? Buffer.from(r.addr.subarray(0, 4)) : r.atyp === 4 ? Buffer.from(r.addr) : Buffer.concat([Buffer.from([r.host.length]), Buffer.from(r.host)]);
  const port = Buffer.from([r.port >> 8, r.port & 0xff]);
  return Buffer.concat([method, auth, Buffer.from([5, 0, 0, r.atyp]), bnd, port]);
}

/** The reference reader of what a server sent: is it an accepted CONNECT? */
function socksAccepts(b: Buffer): boolean {
  if (b.length < 2 || b[0] !== 5) return false;
  let i = 2;
  if (b[1] === 2) {
    // RFC 1929 says VER = 1, and a proxy may pick only a method that was offered; `socks`
    // reads only the status, and answers a method 2 it did not offer with empty credentials:
    // harmless (nothing secret is sent), so the reference accepts what it accepts
    if (b.length < 4 || b[3] !== 0) return false;
    i = 4;
  } else if (b[1] !== 0) return false;
  if (b.length < i + 4 || b[i] !== 5 || b[i + 1] !== 0) return false;
  const atyp = b[i + 3];
  const len = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? (b.length > i + 4 ? 1 + b[i + 4]! : Infinity) : Infinity;
  return b.length >= i + 4 + len + 2;
}

type Mut = { at: number; v: number } | { cut: number };
const mut: fc.Arbitrary<Mut> = fc.oneof(fc.record({ at: fc.nat(), v: fc.nat({ max: 255 }) }), fc.record({ cut: fc.nat({ max: 30 }) }));
function mutated(b: Buffer, ms: Mut[]): Buffer {
  let o = Buffer.from(b);
  for (const m of ms) {
    if ('v' in m) {
      if (o.length) o[m.at % o.length] = m.v;
    } else o = o.subarray(0, Math.max(0, o.length - m.cut));
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// DNS

const label = fc.oneof(bytes(1, 63), fc.stringMatching(/^[a-z0-9-]{1,20}$/).map((s) => new Uint8Array(Buffer.from(s))));
const query = fc
  .record({
    id: fc.nat({ max: 0xffff }),
    flags: fc.nat({ max: 0x7fff }),
    labels: fc.array(label, { maxLength: 6 }),
    qtype: fc.nat({ max: 0xffff }),
    qclass: fc.nat({ max: 0xffff }),
    extra: bytes(0, 40),
    counts: fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 3 }), fc.nat({ max: 3 })),
  })
  .filter((q) => q.labels.reduce((n, l) => n + l.length + 1, 1) <= 255);
function queryBytes(q: { id: number; flags: number; labels: Uint8Array[]; qtype: number; qclass: number; extra: Uint8Array; counts: [number, number, number] }): { msg: Buffer; question: Buffer } {
  const name = Buffer.concat([...q.labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]), Buffer.from([0])]);
  const question = Buffer.concat([name, Buffer.from([q.qtype >> 8, q.qtype & 0xff, q.qclass >> 8, q.qclass & 0xff])]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(q.id, 0);
  head.writeUInt16BE(q.flags, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(q.counts[0], 6);
  head.writeUInt16BE(q.counts[1], 8);
  head.writeUInt16BE(q.counts[2], 10);
  return { msg: Buffer.concat([head, question, Buffer.from(q.extra)]), question };
}

function expectAnswerTo(a: Buffer, q: Buffer, question: Buffer): void {
  expect(a.length).toBe(12 + question.length);
  expect(a.readUInt16BE(0)).toBe(q.readUInt16BE(0));
  const f = q.readUInt16BE(2);
  expect(a.readUInt16BE(2)).toBe(0x8000 | (f & 0x7800) | 0x0200 | (f & 0x0100));
  expect([a.readUInt16BE(4), a.readUInt16BE(6), a.readUInt16BE(8), a.readUInt16BE(10)]).toEqual([question.length ? 1 : 0, 0, 0, 0]);
  expect(a.subarray(12).equals(question)).toBe(true);
}

describe('fuzz: proxy', () => {
  it('proxy/http-status: a status line parses or is a ProxyDialError', { timeout: testTimeout(4) }, () => {
    fuzzSync('proxy/http-status', 4, [statusLine, headerLines], (line, h) => {
      try {
        const r = parseConnectResponse([line, ...h].join('\r\n'));
        expect(r.status).toBeGreaterThanOrEqual(0);
        expect(r.status).toBeLessThanOrEqual(999);
        expect(line.startsWith(`HTTP/1.`)).toBe(true);
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(ProxyDialError);
        expect((e as ProxyDialError).kind).toBe('protocol');
      }
    });
  });

  it('proxy/http-connect: only a 2xx answer opens the tunnel; the rest of the bytes are kept', { timeout: testTimeout(1) }, async () => {
    await fuzzAsync('proxy/http-connect', 1, [answer, fc.array(fc.nat({ max: 300 }), { maxLength: 8 })], async (a, at) => {
      const chunks = cut(a, at);
      const s = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
      const p = httpConnectHandshake(s, DST, { server: 'proxy', port: 3128 }, 5_000).then(
        (x) => ({ ok: true as const, s: x }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      for (const c of chunks) {
        s.push(c);
        await new Promise((r) => setImmediate(r));
      }
      s.push(null);
      const got = await p;
      const want = expected(chunks);
      if (!got.ok) {
        expect(got.e, String(got.e)).toBeInstanceOf(ProxyDialError);
        expect(want.ok, `refused a valid answer: ${String(got.e)}`).toBe(false);
        return;
      }
      expect(want.ok, 'opened the tunnel on an answer that is not 2xx').toBe(true);
      const rest: Buffer[] = [];
      got.s.on('data', (d: Buffer) => rest.push(d));
      got.s.resume();
      if (!got.s.readableEnded) await once(got.s, 'end');
      expect(Buffer.concat(rest).equals((want as { rest: Buffer }).rest)).toBe(true);
    });
  });

  describe('proxy/socks5', () => {
    let server: Server;
    let script: Buffer = Buffer.alloc(0);
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      server = createServer((c) => {
        sockets.add(c);
        c.on('close', () => sockets.delete(c));
        c.on('error', () => {});
        // lock-step, as a proxy answers: method choice, then the RFC 1929 status when the
        // method is 2, then the rest (the CONNECT reply), and close
        const b = script;
        const parts = b[1] === 2 ? [b.subarray(0, 2), b.subarray(2, 4), b.subarray(4)] : [b.subarray(0, 2), b.subarray(2)];
        let n = 0;
        c.on('data', () => {
          const part = parts[n++];
          if (part === undefined) return;
          // nothing more to say: close, so a short answer fails at once instead of timing out
          if (parts.slice(n).every((x) => x.length === 0) || part.length === 0) c.end(part);
          else c.write(part);
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    it('resolves only on a valid SOCKS5 success; everything else is a ProxyDialError', { timeout: testTimeout(0.5, 20) }, async () => {
      const port = (server.address() as AddressInfo).port;
      const sent = fc.oneof(
        fc.tuple(validReply, fc.array(mut, { maxLength: 3 })).map(([r, ms]) => ({ bytes: mutated(replyBytes(r), ms), auth: r.auth })),
        fc.tuple(bytes(0, 40), fc.boolean()).map(([b, auth]) => ({ bytes: Buffer.from(b), auth })),
      );
      await fuzzAsync('proxy/socks5', 0.5, [sent], async ({ bytes: b, auth }) => {
        script = b;
        const dial = socks5Dialer({ server: '127.0.0.1', port, timeoutMs: 1500, ...(auth ? { auth: { username: 'u', password: 'p' } } : {}) });
        let ok: boolean;
        try {
          const s = await dial(DST);
          s.destroy();
          ok = true;
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(ProxyDialError);
          ok = false;
        }
        if (ok) expect(socksAccepts(b), `accepted ${b.toString('hex')}`).toBe(true);
        else expect(socksAccepts(b), `refused ${b.toString('hex')}`).toBe(false);
      });
    });
  });

  it('proxy/dns: any datagram gets no answer or a well-formed TC=1 answer', { timeout: testTimeout(4) }, () => {
    fuzzSync('proxy/dns', 4, [fc.oneof(bytes(0, 300), query.map((q) => queryBytes(q).msg), fc.tuple(query, fc.array(mut, { maxLength: 3 })).map(([q, ms]) => mutated(queryBytes(q).msg, ms)))], (d) => {
      const q = Buffer.from(d);
      const a = truncatedAnswer(q);
      if (!a) return;
      expect(q.length).toBeGreaterThanOrEqual(12);
      expect(q.readUInt16BE(2) & 0x8000).toBe(0);
      const qd = q.readUInt16BE(4);
      expect(qd === 0 || qd === 1).toBe(true);
      expectAnswerTo(a, q, q.subarray(12, a.length));
      // the question it echoes is one name of labels ending in the root, then type and class
      let o = 12;
      if (qd === 1) {
        while (a[o] !== 0) o += 1 + a[o]!;
        expect(o + 5).toBe(a.length);
      }
    });
  });

  it('proxy/dns: a valid query gets the TC=1 answer with its question', { timeout: testTimeout(2) }, () => {
    fuzzSync('proxy/dns-valid', 2, [query], (qq) => {
      const { msg, question } = queryBytes(qq);
      const a = truncatedAnswer(msg);
      expect(a).toBeDefined();
      expectAnswerTo(a!, msg, question);
    });
  });
});
