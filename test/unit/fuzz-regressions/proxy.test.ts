/** Counterexamples found by test/fuzz/proxy.fuzz.ts, kept as explicit regression tests. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { socks5Dialer } from '../../../src/proxy/socks5.js';
import { ProxyDialError } from '../../../src/proxy/types.js';

let server: Server | undefined;
afterEach(async () => {
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
});

/** A proxy that answers the greeting with `first`, the CONNECT request with `second` and closes. */
async function proxy(first: number[], second: number[]): Promise<number> {
  server = createServer((c) => {
    c.on('error', () => {});
    let n = 0;
    c.on('data', () => {
      if (n++ === 0) c.write(Buffer.from(first));
      else c.end(Buffer.from(second));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function dial(port: number): Promise<unknown> {
  try {
    const s = await socks5Dialer({ server: '127.0.0.1', port, timeoutMs: 60_000 })({
      host: 'example.com',
      port: 443,
    });
    s.destroy();
    return 'connected';
  } catch (e) {
    return e;
  }
}

describe('proxy/socks5', () => {
  // seed -42344845: a success reply with address type 0 was reported as connected without
  // being consumed, and its bytes were then handed to the app as if the destination sent them
  it('refuses a success reply with an invalid address type', async () => {
    const port = await proxy([5, 0], [5, 0, 0, 0, 1, 2, 3, 4, 0, 80]);
    const e = await dial(port);
    expect(e).toBeInstanceOf(ProxyDialError);
    expect((e as Error).message).toContain('invalid address type');
  });
  // the half-open socket to the proxy did not notice the proxy closing mid-handshake: the
  // dial waited for its whole timeout (here 60 s, beyond the test's) instead of failing
  it('fails at once when the proxy closes in the middle of its reply', async () => {
    const port = await proxy([5, 0], [5, 0, 0, 1]);
    const e = await dial(port);
    expect(e).toBeInstanceOf(ProxyDialError);
    expect((e as ProxyDialError).kind).toBe('protocol');
    expect((e as Error).message).toContain('Socket closed');
  });
  it('still connects on a valid reply followed by the close of the destination', async () => {
    const port = await proxy([5, 0], [5, 0, 0, 1, 1, 2, 3, 4, 0, 80]);
    expect(await dial(port)).toBe('connected');
  });
});
