/**
 * A health probe through a proxy tunnel that gives up (its timeout, an abort) closes the
 * connection to the proxy at once, even when the proxy accepts late: the dialers end their
 * handshake on the abort (proxy/socks5.ts untilAbort) and runProbe closes a stream that still
 * arrives after it (daemon/probe-run.ts). No timers: the proxies here answer only when told.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { runProbe } from '../../../src/daemon/probe-run.js';
import { connectTcp } from '../../../src/native/tcpsock.js';
import { httpConnectDialer } from '../../../src/proxy/http-connect.js';
import { socks5Dialer } from '../../../src/proxy/socks5.js';
import type { Dialer } from '../../../src/proxy/types.js';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets) s.destroy();
  sockets.length = 0;
  server?.close();
  server = undefined;
});

/** a proxy that reads its client's first bytes and answers only when `accept` is called */
async function lateProxy(answer: string | Buffer): Promise<{
  port: number;
  /** the client's first bytes arrived (the handshake is under way) */
  greeted: Promise<Socket>;
  accept(s: Socket): void;
}> {
  let greet!: (s: Socket) => void;
  const greeted = new Promise<Socket>((r) => (greet = r));
  server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.once('data', () => greet(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    greeted,
    accept: (s) => {
      if (!s.destroyed) s.write(answer);
    },
  };
}

const closed = (s: Socket) =>
  s.destroyed || s.closed ? Promise.resolve() : once(s, 'close').then(() => undefined);

const PROXIES: [string, (port: number) => Dialer, Buffer | string][] = [
  [
    'SOCKS5',
    (port) => socks5Dialer({ server: '127.0.0.1', port, timeoutMs: 60_000 }),
    // method "no authentication", then CONNECT succeeded (bound 0.0.0.0:0)
    Buffer.from([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
  ],
  [
    'HTTP CONNECT',
    (port) => httpConnectDialer({ server: '127.0.0.1', port, tls: false, timeoutMs: 60_000 }),
    'HTTP/1.1 200 Connection established\r\n\r\n',
  ],
];

describe('a proxy probe that gives up closes its connection to the proxy at once', () => {
  for (const [name, dialer, answer] of PROXIES)
    it(`${name}: aborted mid-handshake (the proxy would accept just after)`, async () => {
      const proxy = await lateProxy(answer);
      const ac = new AbortController();
      const probe = runProbe(
        { tcp: '10.9.0.1:80' },
        { dialer: dialer(proxy.port) },
        { timeoutMs: 1000, signal: ac.signal },
      );
      const s = await proxy.greeted;
      ac.abort(new Error('no answer within 1000 ms'));
      await expect(probe).rejects.toThrow(/given up \(no answer within 1000 ms\)/);
      // the proxy's side sees the close now, not at the dialer's 60 s handshake timeout
      await closed(s);
      // and accepting late changes nothing
      proxy.accept(s);
    });

  it('a dialer that ignores the signal: its late stream is closed at once (runProbe)', async () => {
    const proxy = await lateProxy('');
    const ac = new AbortController();
    let late: Socket | undefined;
    // resolves only after the abort, with an open connection
    const dialer: Dialer = () =>
      new Promise((resolve, reject) => {
        ac.signal.addEventListener('abort', () => {
          connectTcp({ host: '127.0.0.1', port: proxy.port, timeoutMs: 5000 }).then((c) => {
            late = c;
            c.write('x');
            resolve(c);
          }, reject);
        });
      });
    const probe = runProbe(
      { url: 'http://10.9.0.1/' },
      { dialer },
      { timeoutMs: 1000, signal: ac.signal },
    );
    ac.abort(new Error('no answer within 1000 ms'));
    await expect(probe).rejects.toThrow(/no answer within 1000 ms/);
    expect(late?.destroyed).toBe(true);
    await closed(await proxy.greeted);
  });
});
