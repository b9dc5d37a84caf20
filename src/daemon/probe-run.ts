/**
 * The probes themselves (health-probe.ts runs them), always inside the tunnel's routing:
 * - a WireGuard-like tunnel: a TCP socket bound to the tunnel's link (SO_BINDTODEVICE,
 *   native/bind-device.ts) — when the link is gone the socket cannot be bound or routed and
 *   the probe fails; it never falls back to the main table. Hosts are addresses (semantic
 *   check), so no lookup leaves outside the tunnel either;
 * - a proxy tunnel: through the proxy's upstream dialer (the proxy connects the target: a
 *   proxy that accepts TCP but stalls fails the probe at its timeout);
 * - icmp: `ping -c 1 -I <link>` (iputils binds its socket to the link with SO_BINDTODEVICE;
 *   the daemon is root, so it needs no ping_group_range, and a child with a timeout is simpler
 *   and safer than a raw ICMP socket read through koffi; a timeout kills it).
 * `url`: a GET over that connection; any HTTP status line is a success.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { splitHostPort, type HealthProbe } from '../config/schema-health.js';
import type { ProbeRoute, ProbeRunner } from './health-probe.js';

async function open(
  host: string,
  port: number,
  route: ProbeRoute,
  o: { timeoutMs: number; signal: AbortSignal },
): Promise<Duplex> {
  if ('dialer' in route) {
    // the dialer ends its handshake on the abort (proxy/socks5.ts untilAbort); a stream that
    // still arrives after it is closed here at once
    const s = await route.dialer({ host, port }, { signal: o.signal });
    if (o.signal.aborted) {
      s.destroy();
      throw o.signal.reason instanceof Error ? o.signal.reason : new Error('aborted');
    }
    return s;
  }
  if (isIP(host) === 0)
    throw new Error(`${host} is not an address (a lookup would leave the tunnel)`);
  const [{ connectTcp }, { deviceTcpFd }] = await Promise.all([
    import('../native/tcpsock.js'),
    import('../native/bind-device.js'),
  ]);
  return connectTcp({
    host,
    port,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
    socketFd: (f) => deviceTcpFd(f, route.link),
  });
}

/** the first line of an HTTP answer on `s` (resolves on a status line, rejects otherwise) */
export function httpStatus(s: Duplex, request: string, signal: AbortSignal): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let got = '';
    const done = (e?: Error, status?: number) => {
      s.off('data', onData);
      signal.removeEventListener('abort', onAbort);
      s.destroy();
      if (e) reject(e);
      else resolve(status!);
    };
    const onData = (b: Buffer) => {
      got += b.toString('latin1');
      const nl = got.indexOf('\n');
      if (nl < 0 && got.length < 256) return;
      const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(got);
      done(m ? undefined : new Error('the answer is not HTTP'), m ? Number(m[1]) : undefined);
    };
    const onAbort = () => done(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    s.on('data', onData);
    s.once('error', (e: Error) => done(e));
    s.once('end', () => done(new Error('the connection closed without an answer')));
    s.write(request);
  });
}

function ping(addr: string, link: string, o: { timeoutMs: number; signal: AbortSignal }) {
  const secs = String(Math.max(1, Math.ceil(o.timeoutMs / 1000)));
  return new Promise<void>((resolve, reject) => {
    execFile(
      'ping',
      ['-n', '-q', '-c', '1', '-W', secs, '-I', link, addr],
      { timeout: o.timeoutMs + 500, signal: o.signal, killSignal: 'SIGKILL' },
      (e, _out, err) => {
        if (!e) return resolve();
        const why = String(err).trim().split('\n')[0];
        reject(new Error(why || (e.code === 1 ? 'no echo reply' : e.message)));
      },
    );
  });
}

export const runProbe: ProbeRunner = async (p: HealthProbe, route, o) => {
  if ('icmp' in p) {
    if ('dialer' in route) throw new Error('icmp needs a tunnel with a link');
    return ping(p.icmp, route.link, o);
  }
  if ('tcp' in p) {
    const hp = splitHostPort(p.tcp)!;
    (await open(hp.host, hp.port, route, o)).destroy();
    return;
  }
  const u = new URL(p.url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const s = await open(host, Number(u.port || 80), route, o);
  s.on('error', () => {});
  const req = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: awg-probe\r\nConnection: close\r\n\r\n`;
  await httpStatus(s, req, o.signal);
};
