/**
 * A TCP bulk transfer with an integrity check: a listener in one namespace counts and hashes
 * what one connection brings, a client in another sends seeded pseudo-random bytes and
 * hashes what it sent; both print `<bytes> <sha256>`. Equal lines = the bytes arrived intact
 * (what the data plane's reused buffers must never break).
 */
import { nsSpawn } from './netns.js';

export const bulkServer = (addr: string, port: number) => `
const net = require('node:net'); const h = require('node:crypto').createHash('sha256'); let n = 0;
const s = net.createServer((c) => { c.on('data', (d) => { n += d.length; h.update(d); });
  c.on('end', () => { console.log(n + ' ' + h.digest('hex')); s.close(); }); });
s.listen(${port}, '${addr}', () => console.log('ready'));`;

export const bulkClient = (addr: string, port: number, bytes: number) => `
const net = require('node:net'); const h = require('node:crypto').createHash('sha256');
const chunk = Buffer.alloc(65536); let x = 12345; let left = ${bytes};
const c = net.connect(${port}, '${addr}', () => { const more = () => { while (left > 0) {
  for (let i = 0; i < chunk.length; i += 4) { x = (x * 1103515245 + 12345) >>> 0; chunk.writeUInt32LE(x, i); }
  const b = Buffer.from(chunk.subarray(0, Math.min(left, chunk.length))); left -= b.length; h.update(b);
  if (!c.write(b)) return c.once('drain', more); }
  c.end(() => console.log(${bytes} + ' ' + h.digest('hex'))); }; more(); });`;

/** Sends `bytes` from `fromNs` to addr:port in `toNs`; returns both summary lines. */
export async function bulkTransfer(
  fromNs: string,
  toNs: string,
  addr: string,
  port: number,
  bytes: number,
): Promise<{ sent: string; received: string; codes: [number | null, number | null] }> {
  const srv = nsSpawn(toNs, process.execPath, ['-e', bulkServer(addr, port)]);
  try {
    for (let i = 0; i < 200 && !srv.output().includes('ready'); i++)
      await new Promise((r) => setTimeout(r, 25));
    const cli = nsSpawn(fromNs, process.execPath, ['-e', bulkClient(addr, port, bytes)]);
    const c = await cli.exited;
    const s = await srv.exited;
    const last = (t: string) => t.trim().split('\n').pop() ?? '';
    return { sent: last(cli.output()), received: last(srv.output()), codes: [c, s] };
  } finally {
    await srv.kill(500);
  }
}
