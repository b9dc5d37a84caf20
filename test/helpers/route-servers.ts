/** Loopback stand-ins for the routes a flow router dials (test/unit/proxy/flow-router*.test.ts). */
import { createServer, type Server } from 'node:net';

/** a route's server: answers `<name>:<what it got>` and remembers every connection */
export async function routeServer(name: string): Promise<{ server: Server; port: number; seen: string[] }> {
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
