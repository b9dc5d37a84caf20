/**
 * TransparentProxy on loopback with the original-destination hook (no NAT, no root): the
 * dialer connects to a local server standing in for the destination.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TransparentProxy, type DialFailure } from '../../../src/proxy/transparent.js';
import { ProxyDialError, type Dialer } from '../../../src/proxy/types.js';
import { directDialer } from '../../../src/proxy/direct.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function server(onConn: (s: Socket) => void): Promise<number> {
  const s: Server = createServer({ allowHalfOpen: true }, onConn);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const live = new Set<Socket>();
  s.on('connection', (c) => {
    live.add(c);
    c.on('close', () => live.delete(c));
  });
  cleanup.push(() => {
    for (const c of live) c.destroy();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return (s.address() as AddressInfo).port;
}

async function proxyTo(
  port: number,
  opts: { dial?: Dialer; idleTimeoutMs?: number; maxConnections?: number } = {},
) {
  const p = new TransparentProxy({
    listen: { host: '127.0.0.1', port: 0 },
    dial: opts.dial ?? directDialer({}),
    idleTimeoutMs: opts.idleTimeoutMs,
    maxConnections: opts.maxConnections,
    originalDestination: () => ({ host: '127.0.0.1', port }),
  });
  const a = await p.start();
  cleanup.push(() => p.close());
  return { p, port: a.port };
}

function client(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(c));
    c.once('error', reject);
    cleanup.push(() => void c.destroy());
  });
}

/** connects and resolves with how the connection ended: an error code or 'closed' */
function outcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ port, host: '127.0.0.1' });
    cleanup.push(() => void c.destroy());
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    c.once('close', () => resolve('closed'));
    c.resume();
  });
}

const readAll = (s: Socket) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });

const until = async (f: () => boolean) => {
  // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
  while (!f()) await new Promise((r) => setTimeout(r, 10));
  expect(f()).toBe(true);
};

describe('TransparentProxy', () => {
  it('pipes both ways and forwards a half-close: the reply still arrives after our FIN', async () => {
    const dest = await server((s) => {
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      // answer only after the client's FIN: needs the proxy to forward end() and keep the other direction open
      s.on('end', () => s.end(Buffer.concat([Buffer.from('got '), ...parts])));
    });
    const { p, port } = await proxyTo(dest);
    const c = await client(port);
    const reply = readAll(c);
    c.end('hello');
    expect((await reply).toString()).toBe('got hello');
    await until(() => p.stats().connections.active === 0);
    expect(p.stats()).toMatchObject({
      connections: { active: 0, total: 1 },
      bytes: { up: 5, down: 9 },
    });
  });

  it('dial failure: event, counter, and the app connection is reset', async () => {
    const failing: Dialer = async () => {
      throw new ProxyDialError('auth', 'bad credentials');
    };
    const { p, port } = await proxyTo(1, { dial: failing });
    const events: DialFailure[] = [];
    p.on('dial-error', (f) => events.push(f));
    expect(await outcome(port)).toBe('ECONNRESET');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'auth', dst: { host: '127.0.0.1', port: 1 } });
    expect(p.stats().errors['dial-auth']).toBe(1);
  });

  it('connections beyond maxConnections are reset', async () => {
    const dest = await server(() => {});
    const { p, port } = await proxyTo(dest, { maxConnections: 1 });
    await client(port);
    await until(() => p.stats().connections.active === 1);
    expect(await outcome(port)).toBe('ECONNRESET');
    expect(p.stats().errors.limit).toBe(1);
    expect(p.stats().connections.active).toBe(1);
  });

  it('an idle connection is closed', async () => {
    const dest = await server(() => {});
    const { p, port } = await proxyTo(dest, { idleTimeoutMs: 50 });
    const c = await client(port);
    await new Promise((r) => {
      c.once('close', r);
      c.on('error', () => {});
      c.resume();
    });
    expect(p.stats().errors['idle-timeout']).toBe(1);
    expect(p.stats().connections.active).toBe(0);
  });

  it('backpressure: a reader that stops reading stops the sender; nothing piles up in the proxy', async () => {
    const total = 256 * 1024 * 1024;
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    const dest = await server((s) => {
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    const { p, port } = await proxyTo(dest);
    const c = await client(port);
    c.pause();
    // wait until the sender stalls (kernel buffers full on both hops)
    let last = -1;
    while (sent !== last) {
      last = sent;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sent).toBeLessThan(total);
    const inProxy = p.stats().bytes.down;
    expect(inProxy).toBeLessThan(64 * 1024 * 1024);
    let got = 0;
    c.on('data', (d: Buffer) => (got += d.length));
    c.resume();
    await new Promise((r) => c.once('end', r));
    expect(got).toBe(total);
  }, 60_000);
});
