/**
 * The name in a client's first bytes (util/first-bytes.ts): real ClientHellos from Node's TLS
 * client (OpenSSL), cut at every byte and re-fragmented into several records; HTTP/1 Host;
 * and hostile input (random bytes, mutated and truncated ClientHellos) that must never throw
 * or name something outside the host grammar.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hostName, MAX_SNIFF_BYTES, sniffName } from '../../../src/util/first-bytes.js';
import { clientHello } from '../../helpers/tls-hello.js';

/** the same handshake in records of at most `size` payload bytes */
function refragment(rec: Buffer, size: number): Buffer {
  const hs = rec.subarray(5);
  const out: Buffer[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const part = hs.subarray(i, i + size);
    const head = Buffer.from([0x16, 3, 1, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    out.push(head, part);
  }
  return Buffer.concat(out);
}

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('sniffName: TLS ClientHello', () => {
  it('gives the SNI of a real ClientHello, lowercased; every proper prefix asks for more', async () => {
    const hello = await clientHello('WWW.Example.ORG');
    expect(sniffName(hello)).toEqual({ state: 'name', name: 'www.example.org', via: 'sni' });
    for (let n = 0; n < hello.length; n++)
      expect(sniffName(hello.subarray(0, n)), `prefix ${n}`).toEqual({ state: 'more' });
    // what follows the hello (more records) changes nothing
    expect(sniffName(Buffer.concat([hello, Buffer.from([0x17, 3, 3, 0, 1, 0])]))).toMatchObject({
      name: 'www.example.org',
    });
  });

  it('joins a ClientHello split over several handshake records', async () => {
    const hello = await clientHello('api.example.net');
    for (const size of [1, 7, 64, 200]) {
      const split = refragment(hello, size);
      expect(sniffName(split), `records of ${size}`).toMatchObject({ name: 'api.example.net' });
      expect(sniffName(split.subarray(0, split.length - 1))).toEqual({ state: 'more' });
    }
  });

  it('none: a ClientHello without SNI (an address as servername sends none), another handshake, not TLS', async () => {
    const noSni = await clientHello('');
    expect(sniffName(noSni)).toEqual({ state: 'none' });
    const sh = Buffer.from(noSni);
    sh[5] = 2; // ServerHello
    expect(sniffName(sh)).toEqual({ state: 'none' });
    expect(sniffName(Buffer.from([0x16, 2, 0]))).toEqual({ state: 'none' }); // not version 3
    expect(sniffName(Buffer.from([0x17, 3, 3, 0, 5]))).toEqual({ state: 'none' });
    expect(sniffName(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'))).toEqual({ state: 'none' });
    expect(sniffName(Buffer.alloc(0))).toEqual({ state: 'more' });
  });

  it('hostile input: mutated and truncated ClientHellos never throw; a name is always a host name', async () => {
    const hello = await clientHello('mutant.example.com');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(hello.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        fc.nat(hello.length),
        (flips, cut) => {
          const b = Buffer.from(hello);
          for (const [i, v] of flips) b[i] = v;
          const r = sniffName(b.subarray(0, cut));
          if (r.state === 'name') expect(hostName(r.name)).toBe(r.name);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('sniffName: HTTP/1 Host', () => {
  it('the Host header (any case, port and trailing dot dropped); prefixes ask for more', () => {
    const req =
      'GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  Portal.Example.org.:8080 \r\n\r\n';
    expect(sniffName(bytes(req))).toEqual({
      state: 'name',
      name: 'portal.example.org',
      via: 'host',
    });
    const hostEnd = req.indexOf(':8080 \r\n') + ':8080 \r\n'.length;
    for (let n = 0; n < hostEnd; n++)
      expect(sniffName(bytes(req.slice(0, n))), req.slice(0, n)).toEqual({ state: 'more' });
  });

  it('none: no Host before the end of the headers, an address as host, not HTTP/1, a line too long', () => {
    for (const s of [
      'GET / HTTP/1.1\r\nAccept: */*\r\n\r\nHost: late.example\r\n',
      'GET / HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: bad..name\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      'GET /x\r\n',
      'EHLO mail.example\r\n',
      'get / HTTP/1.1\r\nHost: a.example\r\n\r\n',
      'ABCDEFGHIJKLMNOPQ',
    ])
      expect(sniffName(bytes(s)), s).toEqual({ state: 'none' });
    const long = bytes(`GET /${'a'.repeat(MAX_SNIFF_BYTES)}`);
    expect(sniffName(long)).toEqual({ state: 'none' });
  });
});

describe('sniffName: any bytes', () => {
  it('never throws, and only names host names', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const r = sniffName(b);
        if (r.state === 'name') expect(hostName(r.name)).toBe(r.name);
      }),
      { numRuns: 5000 },
    );
    // TLS- and HTTP-looking starts, to get past the first byte
    fc.assert(
      fc.property(
        fc.constantFrom([0x16, 3, 1], [...bytes('GET / HTTP/1.1\r\nHost: ')]),
        fc.uint8Array({ maxLength: 600 }),
        (head, tail) => {
          const r = sniffName(Buffer.concat([Buffer.from(head), tail]));
          if (r.state === 'name') expect(hostName(r.name)).toBe(r.name);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('hostName: the DNS host grammar only', () => {
    expect(hostName('A-b.Example.')).toBe('a-b.example');
    expect(hostName('_dmarc.example')).toBe('_dmarc.example');
    for (const bad of [
      '',
      '.',
      'a..b',
      '-a.b',
      'a-.b',
      'a b',
      'ex\u00e4mple.org',
      '1.2.3.4',
      `${'a'.repeat(64)}.b`,
    ])
      expect(hostName(bad), bad).toBeUndefined();
  });
});
