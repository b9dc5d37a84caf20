/** Loopback stand-ins for the routes a flow router dials (test/unit/proxy/flow-router*.test.ts). */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';

/** a route's server: answers `<name>:<what it got>` and remembers every connection */
export async function routeServer(
  name: string,
): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((s) => {
    s.on('data', (d) => {
      seen.push(d.toString());
      s.end(`${name}:${d.toString()}`);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, seen };
}

/** the kernel's ephemeral ports (the ones connect() and listen(0) pick): [low, high] */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo! > 0 && hi! >= lo!) return [lo!, hi!];
  } catch {
    // not Linux: no range known
  }
  return [32768, 60999];
}

/**
 * A loopback TCP port free at this moment, below the ephemeral range: a port listen(0) handed
 * out and closed again is the next outgoing connection's to take, and CI runs three unit
 * projects and more beside each other on the host's loopback (a test that squatted such a port
 * a moment later got EADDRINUSE and hung). Only a process that binds this very port explicitly
 * can still take it in between; a test that needs the port held binds it itself.
 */
export async function freePort(): Promise<number> {
  const [lo] = ephemeralRange();
  const base = lo > 11_024 ? 10_000 : 0;
  for (let i = 0; base && i < 50; i++) {
    const port = base + Math.floor(Math.random() * (lo - 1 - base));
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/**
 * One connection to 127.0.0.1:`port` from 127.0.0.1:`localPort` (the port a pcblist fake
 * gives an owner): `msg` sent, what came back, or `reset` when nothing did
 */
export function exchange(port: number, localPort: number, msg: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort });
    let got = '';
    s.on('connect', () => s.write(msg));
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => resolve('reset'));
    s.on('close', () => resolve(got || 'reset'));
  });
}
