/**
 * UAPI over a Unix stream socket (`/var/run/wireguard/<iface>.sock`, mode 0600), so `wg show`
 * / `wg set` can drive the device. Framing as wireguard-go `IpcHandle`: `get=1\n\n` →
 * key=value lines + `errno=0\n\n`; `set=1\n` + lines + `\n` → `errno=N\n\n`; the connection
 * stays open; an unknown operation closes it.
 */
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { AwgError } from '../../errors.js';
import { IPC_ERROR, UapiError, type UapiFlavor } from '../device/uapi.js';
import { uapiReply } from '../device/uapi-text.js';

/** wireguard-go's directory: `wg` reads it (Debian's wg 1.0.20210914 skips the AWG keys it
 * does not know; checked with `wg show` / `wg set` / `wg showconf` against this server).
 * amneziawg-go's directory is where `awg` looks. */
export const SOCKET_DIRECTORY = '/var/run/wireguard';
export const AMNEZIAWG_SOCKET_DIRECTORY = '/var/run/amneziawg';

export function socketPath(iface: string, dir = SOCKET_DIRECTORY): string {
  return join(dir, `${iface}.sock`);
}

/** What the server needs from a device. */
export interface UapiTarget {
  ipcGet(flavor?: UapiFlavor): string;
  ipcSet(text: string): Promise<void>;
}

export interface UapiServer {
  readonly path: string;
  close(): Promise<void>;
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** Starts listening; a stale socket file is replaced, a live one is a conflict. */
export async function listenUapi(
  target: UapiTarget,
  path: string,
  opts: { flavor?: UapiFlavor } = {},
): Promise<UapiServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (await isLive(path))
    throw new AwgError('conflict', `UAPI socket ${path} is in use by another process`);
  try {
    unlinkSync(path);
  } catch {
    /* absent */
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    serveConnection(target, sock, opts.flavor ?? 'auto');
  });
  // after listen: an accept error (EMFILE…) must not end the engine; the server keeps listening
  server.on('error', () => {});
  const old = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } catch (e) {
    throw new AwgError('driver', `cannot listen on ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    process.umask(old);
  }
  chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          try {
            unlinkSync(path);
          } catch {
            /* already gone */
          }
          resolve();
        });
      }),
  };
}

function serveConnection(target: UapiTarget, sock: Socket, flavor: UapiFlavor): void {
  let buf = '';
  let busy = false;
  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const op = buf.slice(0, nl);
        if (op === 'get=1') {
          if (buf.length < nl + 2) return;
          const ok = buf[nl + 1] === '\n';
          buf = buf.slice(nl + 2);
          sock.write(ok ? target.ipcGet(flavor) : uapiReply([], IPC_ERROR.INVALID));
        } else if (op === 'set=1') {
          const end = buf.indexOf('\n\n', nl);
          const emptyBody = buf.slice(nl + 1, nl + 2) === '\n';
          if (end < 0 && !emptyBody) return;
          const stop = emptyBody ? nl + 1 : end + 1;
          const body = buf.slice(nl + 1, stop);
          buf = buf.slice(stop + 1);
          let errno = 0;
          try {
            await target.ipcSet(body);
          } catch (e) {
            errno = e instanceof UapiError ? e.errno : IPC_ERROR.UNKNOWN;
          }
          sock.write(uapiReply([], errno));
        } else {
          sock.end();
          buf = '';
          return;
        }
      }
    } finally {
      busy = false;
    }
  };
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    void pump().then(() => (buf.includes('\n') && !busy ? pump() : undefined));
  });
}
