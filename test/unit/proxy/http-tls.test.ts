/** HTTP CONNECT over TLS to a fake proxy on loopback (self-signed certificate made with openssl). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpConnectDialer } from '../../../src/proxy/http-connect.js';
import { ProxyDialError } from '../../../src/proxy/types.js';

let dir = '';
let cert = '';
let key = '';
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
})();

beforeAll(() => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), 'awgt-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=proxy.test',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
    ],
    { stdio: 'ignore' },
  );
  cert = readFileSync(join(dir, 'c.pem'), 'utf8');
  key = readFileSync(join(dir, 'k.pem'), 'utf8');
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** TLS proxy: 200 + echo for user:secret, 407 otherwise; the echo sends a greeting right after the header (excess bytes) */
async function tlsProxy(): Promise<{ port: number; close: () => void; requests: string[] }> {
  const requests: string[] = [];
  const srv = createServer({ cert, key }, (s: TLSSocket) => {
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      requests.push(head);
      const ok = head.includes(
        `Proxy-Authorization: Basic ${Buffer.from('user:secret').toString('base64')}`,
      );
      if (!ok)
        return void s.end(
          'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n',
        );
      s.write('HTTP/1.1 200 Connection established\r\n\r\nhello ');
      s.pipe(s);
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, close: () => srv.close(), requests };
}

describe.skipIf(!hasOpenssl && !process.env.CI)('HTTP CONNECT over TLS', () => {
  it('tunnels through a TLS proxy; bytes after the response header are kept', async () => {
    const p = await tlsProxy();
    try {
      const dial = httpConnectDialer({
        server: '127.0.0.1',
        port: p.port,
        tls: { ca: cert },
        auth: { username: 'user', password: 'secret' },
      });
      const s = await dial({ host: 'fd00::7', port: 443 });
      s.end('world');
      let got = '';
      for await (const d of s) got += (d as Buffer).toString();
      expect(got).toBe('hello world');
      expect(p.requests[0]).toMatch(/^CONNECT \[fd00::7\]:443 HTTP\/1\.1\r\n/);
    } finally {
      p.close();
    }
  });
  it('407 over TLS is an auth error; an untrusted certificate is unreachable', async () => {
    const p = await tlsProxy();
    try {
      const wrong = httpConnectDialer({
        server: '127.0.0.1',
        port: p.port,
        tls: { ca: cert },
        auth: { username: 'user', password: 'nope' },
      });
      const e = (await wrong({ host: '192.0.2.1', port: 80 }).catch(
        (x: unknown) => x,
      )) as ProxyDialError;
      expect(e.kind).toBe('auth');
      const untrusted = httpConnectDialer({ server: '127.0.0.1', port: p.port, tls: true });
      const e2 = (await untrusted({ host: '192.0.2.1', port: 80 }).catch(
        (x: unknown) => x,
      )) as ProxyDialError;
      expect(e2.kind).toBe('unreachable');
      expect(e2.message).toMatch(/TLS to HTTP proxy .* failed: .*self-signed|certificate/);
    } finally {
      p.close();
    }
  });
});
