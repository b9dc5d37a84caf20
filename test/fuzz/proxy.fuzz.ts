/**
 * Fuzz targets of the proxy upstream parsers (src/proxy/http-connect.ts, socks5.ts over the
 * `socks` package) and the DNS message reader of the proxy DNS forwarder (src/proxy/dns-message.ts).
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
 * proxy/dns-query       arbitrary datagrams → parseQuery reads no query, or exactly one
 *                       standard query whose id and question are the datagram's; its
 *                       SERVFAIL is an answer to it; every generated valid query is read.
 * proxy/dns-fit         responses to a query (random records, mutated) → isAnswerTo never
 *                       throws; an answer fitted to any UDP limit is at most that size, is
 *                       itself unchanged or TC=1, and still an answer to the query when its
 *                       question fits.
 * proxy/socks5-udp-frame  arbitrary datagrams and mutated valid SOCKS5 UDP frames from a
 *                       relay → parseUdpFrame never throws and agrees with a reference
 *                       reader written independently (RSV 0, ATYP 1/3/4 with a whole
 *                       address, FRAG 0, else dropped); a frame read back from buildUdpFrame
 *                       is the destination and payload written; frameIsFrom holds only for
 *                       the destination written, with its address type.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitUdp, isAnswerTo, parseQuery, servfail } from '../../src/proxy/dns-message.js';
import {
  buildUdpFrame,
  frameIsFrom,
  parseUdpFrame,
  type UdpFrame,
} from '../../src/proxy/socks5-udp-frame.js';
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
  fc
    .tuple(
      fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.10', ''),
      fc.oneof(
        fc.integer({ min: 0, max: 999 }).map(String),
        fc.constantFrom('200', '2000', '20', ' 200', '+20', '2e2', ''),
      ),
      fc.oneof(
        fc.constant(''),
        fc.constantFrom(' OK', ' Connection established', ' ', '  x'),
        nastyString.map((s) => ` ${s}`),
      ),
    )
    .map(([v, c, r]) => `${v} ${c}${r}`),
  nastyString,
);
const headerLines = fc.array(
  fc.oneof(
    fc.constantFrom('Proxy-Agent: x', 'Content-Length: 5', 'Connection: close', ''),
    nastyString.filter((s) => !s.includes('\r\n')),
  ),
  { maxLength: 4 },
);
const answer = fc
  .tuple(
    statusLine,
    headerLines,
    fc.constantFrom('\r\n\r\n', '\n\n', '\r\n', ''),
    bytes(0, 64),
    fc.nat({ max: 3 }),
  )
  .map(([s, h, end, rest, big]) => {
    const pad = big === 3 ? [`X-Pad: ${'p'.repeat(MAX_HEADER)}`] : [];
    return Buffer.concat([
      Buffer.from([s, ...h, ...pad].join('\r\n') + end, 'latin1'),
      Buffer.from(rest),
    ]);
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
function replyBytes(r: {
  auth: boolean;
  atyp: number;
  host: string;
  addr: Uint8Array;
  port: number;
}): Buffer {
  const method = Buffer.from([5, r.auth ? 2 : 0]);
  const auth = r.auth ? Buffer.from([1, 0]) : Buffer.alloc(0);
  const bnd =
    r.atyp === 1
      ? Buffer.from(r.addr.subarray(0, 4))
      : r.atyp === 4
        ? Buffer.from(r.addr)
        : Buffer.concat([Buffer.from([r.host.length]), Buffer.from(r.host)]);
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
  const len =
    atyp === 1
      ? 4
      : atyp === 4
        ? 16
        : atyp === 3
          ? b.length > i + 4
            ? 1 + b[i + 4]!
            : Infinity
          : Infinity;
  return b.length >= i + 4 + len + 2;
}

type Mut = { at: number; v: number } | { cut: number };
const mut: fc.Arbitrary<Mut> = fc.oneof(
  fc.record({ at: fc.nat(), v: fc.nat({ max: 255 }) }),
  fc.record({ cut: fc.nat({ max: 30 }) }),
);
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

const label = fc.oneof(
  bytes(1, 63),
  fc.stringMatching(/^[a-z0-9-]{1,20}$/).map((s) => new Uint8Array(Buffer.from(s))),
);
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
function queryBytes(q: {
  id: number;
  flags: number;
  labels: Uint8Array[];
  qtype: number;
  qclass: number;
  extra: Uint8Array;
  counts: [number, number, number];
}): { msg: Buffer; question: Buffer } {
  const name = Buffer.concat([
    ...q.labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]),
    Buffer.from([0]),
  ]);
  const question = Buffer.concat([
    name,
    Buffer.from([q.qtype >> 8, q.qtype & 0xff, q.qclass >> 8, q.qclass & 0xff]),
  ]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(q.id, 0);
  head.writeUInt16BE(q.flags, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(q.counts[0], 6);
  head.writeUInt16BE(q.counts[1], 8);
  head.writeUInt16BE(q.counts[2], 10);
  return { msg: Buffer.concat([head, question, Buffer.from(q.extra)]), question };
}

/** a response to `question`: header (QR=1, id), the question, then whole records */
const records = fc.array(
  fc.record({
    name: fc.constantFrom('ptr', 'root'),
    rtype: fc.nat({ max: 0xffff }),
    rdata: bytes(0, 300),
  }),
  { maxLength: 12 },
);
function responseBytes(
  id: number,
  question: Buffer,
  rs: { name: string; rtype: number; rdata: Uint8Array }[],
): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(rs.length, 6);
  const body = rs.map((r) => {
    const rr = Buffer.alloc(10);
    rr.writeUInt16BE(r.rtype, 0);
    rr.writeUInt16BE(1, 2);
    rr.writeUInt32BE(60, 4);
    rr.writeUInt16BE(r.rdata.length, 8);
    return Buffer.concat([
      r.name === 'ptr' ? Buffer.from([0xc0, 12]) : Buffer.from([0]),
      rr,
      Buffer.from(r.rdata),
    ]);
  });
  return Buffer.concat([head, question, ...body]);
}

describe('fuzz: proxy', () => {
  it(
    'proxy/http-status: a status line parses or is a ProxyDialError',
    { timeout: testTimeout(4) },
    () => {
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
    },
  );

  it(
    'proxy/http-connect: only a 2xx answer opens the tunnel; the rest of the bytes are kept',
    { timeout: testTimeout(1) },
    async () => {
      await fuzzAsync(
        'proxy/http-connect',
        1,
        [answer, fc.array(fc.nat({ max: 300 }), { maxLength: 8 })],
        async (a, at) => {
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
        },
      );
    },
  );

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
        const parts =
          b[1] === 2
            ? [b.subarray(0, 2), b.subarray(2, 4), b.subarray(4)]
            : [b.subarray(0, 2), b.subarray(2)];
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

    it(
      'resolves only on a valid SOCKS5 success; everything else is a ProxyDialError',
      { timeout: testTimeout(0.5, 20) },
      async () => {
        const port = (server.address() as AddressInfo).port;
        const sent = fc.oneof(
          fc
            .tuple(validReply, fc.array(mut, { maxLength: 3 }))
            .map(([r, ms]) => ({ bytes: mutated(replyBytes(r), ms), auth: r.auth })),
          fc
            .tuple(bytes(0, 40), fc.boolean())
            .map(([b, auth]) => ({ bytes: Buffer.from(b), auth })),
        );
        await fuzzAsync('proxy/socks5', 0.5, [sent], async ({ bytes: b, auth }) => {
          script = b;
          // A script that stops mid-reply is refused at the handshake's deadline; a valid one
          // gets all the time it needs: on a loaded machine its handshake could outlast 1.5 s
          // and be refused, which said nothing about the reply.
          const valid = socksAccepts(b);
          const dial = socks5Dialer({
            server: '127.0.0.1',
            port,
            timeoutMs: valid ? 600_000 : 1500,
            ...(auth ? { auth: { username: 'u', password: 'p' } } : {}),
          });
          let ok: boolean;
          try {
            const s = await dial(DST);
            s.destroy();
            ok = true;
          } catch (e) {
            expect(e, String(e)).toBeInstanceOf(ProxyDialError);
            ok = false;
          }
          if (ok) expect(valid, `accepted ${b.toString('hex')}`).toBe(true);
          else expect(valid, `refused ${b.toString('hex')}`).toBe(false);
        });
      },
    );
  });

  it(
    'proxy/dns-query: any datagram is no query or exactly the query it holds; its SERVFAIL answers it',
    { timeout: testTimeout(4) },
    () => {
      fuzzSync(
        'proxy/dns-query',
        4,
        [
          fc.oneof(
            bytes(0, 300),
            query.map((q) => queryBytes(q).msg),
            fc
              .tuple(query, fc.array(mut, { maxLength: 3 }))
              .map(([q, ms]) => mutated(queryBytes(q).msg, ms)),
          ),
        ],
        (d) => {
          const m = Buffer.from(d);
          const q = parseQuery(m);
          if (!q) return;
          expect(m.readUInt16BE(2) & 0xf800).toBe(0); // QR=0, OPCODE=QUERY
          expect([m.readUInt16BE(4), m.readUInt16BE(6), m.readUInt16BE(8)]).toEqual([1, 0, 0]);
          expect(q.id).toBe(m.readUInt16BE(0));
          expect(m.subarray(12, 12 + q.question.length).equals(q.question)).toBe(true);
          expect(q.udpLimit).toBeGreaterThanOrEqual(512);
          expect(q.udpLimit).toBeLessThanOrEqual(0xffff);
          const f = servfail(q, true);
          expect(isAnswerTo(f, q)).toBe(true);
          expect(f.readUInt16BE(2) & 0x000f).toBe(2);
        },
      );
    },
  );

  it(
    'proxy/dns-query: a valid query is read with its question',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('proxy/dns-valid', 2, [query], (qq) => {
        const { msg, question } = queryBytes({
          ...qq,
          flags: qq.flags & 0x07ff,
          counts: [0, 0, 0],
          extra: new Uint8Array(0),
        });
        const q = parseQuery(msg);
        expect(q).toBeDefined();
        expect(q!.question.equals(question)).toBe(true);
        expect(q!.udpLimit).toBe(512);
      });
    },
  );

  it(
    'proxy/dns-fit: an answer fitted to a UDP limit fits, is unchanged or TC=1, and still answers the query',
    { timeout: testTimeout(3) },
    () => {
      fuzzSync(
        'proxy/dns-fit',
        3,
        [query, records, fc.array(mut, { maxLength: 2 }), fc.integer({ min: 12, max: 4096 })],
        (qq, rs, ms, limit) => {
          const { msg } = queryBytes({
            ...qq,
            flags: qq.flags & 0x07ff,
            counts: [0, 0, 0],
            extra: new Uint8Array(0),
          });
          const q = parseQuery(msg)!;
          const full = responseBytes(q.id, q.question, rs);
          expect(isAnswerTo(full, q)).toBe(true);
          const r = mutated(full, ms);
          if (!isAnswerTo(r, q)) return; // a mutation that breaks it: never forwarded
          const fitted = fitUdp(r, limit);
          expect(fitted.length).toBeLessThanOrEqual(limit);
          if (r.length <= limit) expect(fitted.equals(r)).toBe(true);
          else {
            expect(fitted.readUInt16BE(2) & 0x0200).toBe(0x0200);
            expect(fitted.readUInt16BE(0)).toBe(q.id);
            if (12 + q.question.length <= limit) expect(isAnswerTo(fitted, q)).toBe(true);
          }
        },
      );
    },
  );
  it(
    'proxy/socks5-udp-frame: the relay frame reader never throws, agrees with a reference reader, round-trips',
    { timeout: testTimeout(4) },
    () => {
      /** the reference: RFC 1928 §7 read byte by byte, without the implementation's helpers */
      const reference = (
        b: Uint8Array,
      ): 'malformed' | 'fragment' | { atyp: number; end: number } => {
        if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return 'malformed';
        const len = b[3] === 1 ? 4 : b[3] === 4 ? 16 : b[3] === 3 && b.length > 4 ? b[4]! + 1 : -1;
        if (len < 0 || (b[3] === 3 && len === 1)) return 'malformed';
        if (b.length < 4 + len + 2) return 'malformed';
        return b[2] !== 0 ? 'fragment' : { atyp: b[3]!, end: 4 + len + 2 };
      };
      const host = fc.oneof(
        fc.ipV4(),
        fc.ipV6(),
        fc.domain().filter((d) => d.length <= 255),
      );
      const frame = fc
        .tuple(host, fc.integer({ min: 0, max: 65535 }), bytes(0, 64))
        .map(([h, port, d]) => ({ dst: { host: h, port }, data: Buffer.from(d) }));
      const input = fc.oneof(
        bytes(0, 40).map((b) => ({ raw: Buffer.from(b), dst: undefined, data: undefined })),
        fc
          .tuple(
            frame,
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
            fc.nat(),
          )
          .map(([f, muts, cut]) => {
            const raw = buildUdpFrame(f.dst, f.data);
            for (const [at, v] of muts) raw[at % raw.length] = v;
            const keep =
              muts.length === 0 ? raw.length : Math.min(raw.length, (cut % (raw.length + 1)) + 4);
            return {
              raw: raw.subarray(0, keep),
              dst: muts.length === 0 ? f.dst : undefined,
              data: f.data,
            };
          }),
      );
      fuzzSync('proxy/socks5-udp-frame', 4, [input], ({ raw, dst, data }) => {
        const got = parseUdpFrame(raw);
        const want = reference(raw);
        if (typeof want === 'string') return void expect(got).toBe(want);
        expect(typeof got).toBe('object');
        const f = got as UdpFrame;
        expect(f.atyp).toBe(want.atyp);
        expect(f.port).toBe(raw.readUInt16BE(want.end - 2));
        expect(f.data.equals(raw.subarray(want.end))).toBe(true);
        if (!dst) return;
        // unmutated: the frame is the destination and payload written
        expect(f.data.equals(data!)).toBe(true);
        expect(frameIsFrom(f, dst)).toBe(true);
        expect(frameIsFrom(f, { ...dst, port: (dst.port + 1) % 65536 })).toBe(false);
      });
    },
  );
});
