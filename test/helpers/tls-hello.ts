/** A real TLS ClientHello (Node's client, OpenSSL): the first record it sends for `servername` ('' : no SNI). */
import { createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export async function clientHello(servername?: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = createServer((s) => {
    s.on('data', (d) => {
      chunks.push(d);
      const b = Buffer.concat(chunks);
      if (b.length >= 5 && b.length >= 5 + b.readUInt16BE(3)) s.destroy();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => {
    const c = tlsConnect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      ...(servername !== undefined ? { servername } : {}),
    });
    c.on('error', () => resolve());
    c.on('close', () => resolve());
  });
  await new Promise<void>((r) => server.close(() => r()));
  const b = Buffer.concat(chunks);
  return b.subarray(0, 5 + b.readUInt16BE(3));
}
