/**
 * The probes themselves (health-probe.ts runs them), always inside the tunnel's routing:
 * - a WireGuard-like tunnel: a TCP socket that sends only through the tunnel's link — Linux:
 *   SO_BINDTODEVICE; macOS: IP(V6)_BOUND_IF on the link's utun (resources/engine/link-pin.ts).
 *   When the link is gone the socket cannot be bound or routed and the
 *   probe fails; it never falls back to the main table. Hosts are addresses (semantic check),
 *   so no lookup leaves outside the tunnel either;
 * - a proxy tunnel: through the proxy's upstream dialer (the proxy connects the target: a
 *   proxy that accepts TCP but stalls fails the probe at its timeout);
 * - icmp: one echo by the system's ping bound to the link — Linux: `ping -I <link>` (iputils
 *   binds its socket with SO_BINDTODEVICE); macOS: `ping -b <utun>` / `ping6 -B <utun>` (its
 *   IP_BOUND_IF options). The daemon is root, so it needs no ping_group_range, and a child with
 *   a timeout is simpler and safer than a raw ICMP socket read through koffi; a timeout kills it.
 * `url`: a GET over that connection; any HTTP status line is a success.
 */
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { splitHostPort, type HealthProbe } from '../config/schema-health.js';
import {
  devicePin,
  utunOf,
  utunPin,
  type LinkPinOf,
  type UtunPinHost,
} from '../resources/engine/link-pin.js';
import type { ProbeRoute, ProbeRunner } from './health-probe.js';

/** How a probe is held to a tunnel's link on this platform. */
export interface ProbeSockets {
  /** the link's pin: the probe's TCP socket sends only through it (resources/engine/link-pin.ts) */
  pin: LinkPinOf;
  /** the command that sends one echo to `addr` through `link`, waiting at most `secs` */
  ping(addr: string, link: string, secs: number): PingCommand;
}

export interface PingCommand {
  file: string;
  args: string[];
  /** its exit code when the echo went out and no reply came */
  noReply: number;
}

/** Linux: SO_BINDTODEVICE on the link itself (`awg-work`), iputils' `ping -I`. */
export const linuxProbeSockets: ProbeSockets = {
  pin: devicePin,
  ping: (addr, link, secs) => ({
    file: 'ping',
    args: ['-n', '-q', '-c', '1', '-W', String(secs), '-I', link, addr],
    noReply: 1,
  }),
};

/**
 * macOS: IP(V6)_BOUND_IF on the link's utun (link-pin.ts utunPin), and the system's ping:
 * `ping -b <utun> -t <secs>` for IPv4, `ping6 -B <utun>` for IPv6 (ping6 has no overall
 * timeout: the child's timeout bounds it). ping exits 2 when no reply came (ping(8)); ping6 is
 * taken to do the same (another code still fails the probe, with ping's own message). NEVER
 * RUN ON A MAC.
 */
export function darwinProbeSockets(h: UtunPinHost): ProbeSockets {
  return {
    pin: utunPin(h),
    ping: (addr, link, secs) =>
      isIP(addr) === 6
        ? { file: 'ping6', args: ['-n', '-q', '-c', '1', '-B', utunOf(h, link), addr], noReply: 2 }
        : {
            file: 'ping',
            args: ['-n', '-q', '-c', '1', '-t', String(secs), '-b', utunOf(h, link), addr],
            noReply: 2,
          },
  };
}

async function open(
  host: string,
  port: number,
  route: ProbeRoute,
  sockets: ProbeSockets,
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
  const [{ connectTcp }, pin] = await Promise.all([
    import('../native/tcpsock.js'),
    sockets.pin(route.link),
  ]);
  return connectTcp({
    host,
    port,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
    socketFd: (f) => pin.tcpFd(f),
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

function ping(cmd: PingCommand, o: { timeoutMs: number; signal: AbortSignal }) {
  return new Promise<void>((resolve, reject) => {
    execFile(
      cmd.file,
      cmd.args,
      { timeout: o.timeoutMs + 500, signal: o.signal, killSignal: 'SIGKILL' },
      (e, _out, err) => {
        if (!e) return resolve();
        const why = String(err).trim().split('\n')[0];
        reject(new Error(why || (e.code === cmd.noReply ? 'no echo reply' : e.message)));
      },
    );
  });
}

/** The probe runner of a platform (`sockets`: how it holds a probe to the tunnel's link). */
export function probeRunner(sockets: ProbeSockets): ProbeRunner {
  return async (p: HealthProbe, route, o) => {
    if ('icmp' in p) {
      if ('dialer' in route) throw new Error('icmp needs a tunnel with a link');
      const secs = Math.max(1, Math.ceil(o.timeoutMs / 1000));
      return ping(sockets.ping(p.icmp, route.link, secs), o);
    }
    if ('tcp' in p) {
      const hp = splitHostPort(p.tcp)!;
      (await open(hp.host, hp.port, route, sockets, o)).destroy();
      return;
    }
    const u = new URL(p.url);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const s = await open(host, Number(u.port || 80), route, sockets, o);
    s.on('error', () => {});
    const req = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: awg-probe\r\nConnection: close\r\n\r\n`;
    await httpStatus(s, req, o.signal);
  };
}

/** Linux's runner */
export const runProbe: ProbeRunner = probeRunner(linuxProbeSockets);
