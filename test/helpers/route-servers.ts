/** Loopback stand-ins for the routes a flow router dials (test/unit/proxy/flow-router*.test.ts). */
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

/** a loopback TCP port free at this moment */
export async function freePort(): Promise<number> {
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
