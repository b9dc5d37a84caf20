/**
 * TUN offloads against the real kernel: two namespaces joined by two TunFiles wired back to
 * back in this process (what one reads is written to the other), a TCP transfer between
 * them. With offloads the sender's kernel hands over TSO super-packets (split here) and the
 * receiver's kernel takes coalesced ones (GRO here); the bytes must arrive intact either
 * way, over IPv4 and IPv6.
 */
import { describe, expect, it } from 'vitest';
import { nsExec, nsSpawn, requireNetnsPrereqs, withNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip']);
const tunFile = skip ? undefined : await import('../../src/dataplane/tun/file.js');

const BYTES = 24 * 1024 * 1024;

/** Receives one connection on addr:port and prints the byte count and sha256. */
const server = (addr: string) => `
const net = require('node:net'); const h = require('node:crypto').createHash('sha256'); let n = 0;
const s = net.createServer((c) => { c.on('data', (d) => { n += d.length; h.update(d); });
  c.on('end', () => { console.log(n + ' ' + h.digest('hex')); s.close(); }); });
s.listen(9000, '${addr}', () => console.log('ready'));`;

/** Sends BYTES of seeded pseudo-random data and prints the same summary. */
const client = (addr: string) => `
const net = require('node:net'); const h = require('node:crypto').createHash('sha256');
const chunk = Buffer.alloc(65536); let x = 12345; let left = ${BYTES};
const c = net.connect(9000, '${addr}', () => { const more = () => { while (left > 0) {
  for (let i = 0; i < chunk.length; i += 4) { x = (x * 1103515245 + 12345) >>> 0; chunk.writeUInt32LE(x, i); }
  const b = Buffer.from(chunk.subarray(0, Math.min(left, chunk.length))); left -= b.length; h.update(b);
  if (!c.write(b)) return c.once('drain', more); }
  c.end(() => console.log(${BYTES} + ' ' + h.digest('hex'))); }; more(); });`;

async function transfer(a: string, b: string, v6: boolean, offload: boolean | 'gro') {
  const ta = tunFile!.TunFile.open('awg-oa', { netns: a, offload });
  const tb = tunFile!.TunFile.open('awg-ob', { netns: b, offload });
  try {
    ta.onReceive((p) => tb.write(p));
    tb.onReceive((p) => ta.write(p));
    const [aAddr, bAddr, plen] = v6 ? ['fd00:201:60::1', 'fd00:201:60::2', 64] : ['10.201.60.1', '10.201.60.2', 24];
    for (const [ns, dev, addr] of [
      [a, 'awg-oa', aAddr],
      [b, 'awg-ob', bAddr],
    ] as const) {
      await nsExec(ns, 'ip', ['addr', 'add', `${addr}/${plen}`, 'dev', dev, ...(v6 ? ['nodad'] : [])]);
      await nsExec(ns, 'ip', ['link', 'set', dev, 'up']);
    }
    const srv = nsSpawn(b, process.execPath, ['-e', server(bAddr)]);
    for (let i = 0; i < 200 && !srv.output().includes('ready'); i++) await new Promise((r) => setTimeout(r, 25));
    const cli = nsSpawn(a, process.execPath, ['-e', client(bAddr)]);
    expect(await cli.exited).toBe(0);
    expect(await srv.exited).toBe(0);
    const sent = cli.output().trim();
    expect(sent).toMatch(new RegExp(`^${BYTES} [0-9a-f]{64}$`));
    expect(srv.output().trim().split('\n').pop()).toBe(sent);
    return { a: { ...ta.stats }, b: { ...tb.stats }, offload: ta.offload && tb.offload };
  } finally {
    ta.close();
    tb.close();
  }
}

describe.skipIf(skip)('TUN offloads (IFF_VNET_HDR, TSO split, GRO coalescing) against the kernel', () => {
  for (const v6 of [false, true]) {
    it(`${v6 ? 'IPv6' : 'IPv4'}: TCP bytes arrive intact; the sender's reads are super-packets, the receiver's writes coalesced`, async () => {
      await withNetns(['offl-a', 'offl-b'], async (a, b) => {
        const r = await transfer(a, b, v6, true);
        expect(r.offload).toBe(true);
        expect(r.a.gsoReads).toBeGreaterThan(0);
        expect(r.a.gsoSegments).toBeGreaterThan(r.a.gsoReads);
        expect(r.b.groWrites).toBeGreaterThan(0);
        expect(r.b.groPackets).toBeGreaterThan(r.b.groWrites);
        expect(r.a.rxDropped + r.b.rxDropped).toBe(0);
        // fewer writes than packets: the receiving kernel saw coalesced segments
        expect(r.b.groPackets).toBeGreaterThan(r.b.txPackets / 4);
      });
    }, 60_000);
  }

  it("'gro' (diagnosis): plain reads, coalesced writes, the same bytes", async () => {
    await withNetns(['offl-a', 'offl-b'], async (a, b) => {
      const r = await transfer(a, b, false, 'gro');
      expect(r.offload).toBe(true);
      expect(r.a.gsoReads + r.b.gsoReads).toBe(0);
      expect(r.b.groWrites).toBeGreaterThan(0);
    });
  }, 60_000);

  it('offloads off (the diagnosis switch): plain packets, the same bytes', async () => {
    await withNetns(['offl-a', 'offl-b'], async (a, b) => {
      const r = await transfer(a, b, false, false);
      expect(r.offload).toBe(false);
      expect(r.a.gsoReads + r.b.gsoReads + r.a.groWrites + r.b.groWrites).toBe(0);
    });
  }, 60_000);
});
