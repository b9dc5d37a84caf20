/**
 * Every socket has an 'error' listener from birth: an 'error' event nobody listens to is an
 * uncaught exception that ends the daemon (or a detached engine). Here: the gRPC API's
 * listening http2 server (grpc-js drops its own listener once bound) and a TCP socket handed
 * from connectTcp to its owner after an await (a SOCKS/TLS handshake, a UDP bind).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { guardListeners } from '../../../src/daemon/server.js';
import { connectTcp } from '../../../src/native/tcpsock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('socket error listeners', () => {
  it('the API server: an error on the bound http2 server is reported, not thrown (grpc-js internals still found)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-sockerr-'));
    dirs.push(dir);
    const server = new grpc.Server();
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${join(dir, 's')}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    try {
      const internal = (server as unknown as { http2Servers: Map<NodeJS.EventEmitter, unknown> }).http2Servers;
      const [h2] = [...internal.keys()];
      // grpc-js removed its listen-time listener: without ours this would throw
      expect(h2!.listenerCount('error')).toBe(0);
      const seen: string[] = [];
      expect(guardListeners(server, (e) => seen.push(e.message))).toBe(1);
      expect(() => h2!.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }))).not.toThrow();
      expect(seen).toEqual(['accept EMFILE']);
    } finally {
      server.forceShutdown();
    }
  });

  it('connectTcp: a socket whose owner has not attached a listener yet survives an error', async () => {
    const srv = createServer((c) => c.on('error', () => {}));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (srv.address() as { port: number }).port;
      const s = await connectTcp({ host: '127.0.0.1', port, timeoutMs: 5000 });
      expect(() => s.emit('error', new Error('ECONNRESET'))).not.toThrow();
      s.destroy();
    } finally {
      srv.close();
    }
  });
});
