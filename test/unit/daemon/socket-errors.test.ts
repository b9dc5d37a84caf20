/**
 * Every socket has an 'error' listener from birth: an 'error' event nobody listens to is an
 * uncaught exception that ends the daemon (or a detached engine). Here: the API's listening
 * socket (accepted by us, then handed to gRPC) and a TCP socket handed
 * from connectTcp to its owner after an await (a SOCKS/TLS handshake, a UDP bind).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiGate, listenWithCredentials } from '../../../src/daemon/server.js';
import { realFileView } from '../../../src/daemon/trusted-path.js';
import { linuxCallerNatives } from '../../../src/native/peercred.js';
import { connectTcp } from '../../../src/native/tcpsock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('socket error listeners', () => {
  it('the API server: an error on the listening socket after it is bound (EMFILE on accept) is reported, not thrown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-sockerr-'));
    dirs.push(dir);
    const seen: string[] = [];
    const gate = new ApiGate({ selfUid: 0 }, undefined, realFileView(linuxCallerNatives.acl));
    const listener = await listenWithCredentials(
      join(dir, 's'),
      gate,
      linuxCallerNatives.peer,
      (s) => s.destroy(),
      (e) => seen.push(e.message),
    );
    try {
      expect(() =>
        listener.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })),
      ).not.toThrow();
      expect(seen).toEqual(['accept EMFILE']);
      expect(listener.listening).toBe(true);
    } finally {
      listener.close();
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
