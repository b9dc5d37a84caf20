/**
 * The direct stub resolver against DNS servers on loopback (unmarked: SO_MARK is proven in
 * the netns test daemon-killswitch-hostname). Replies are believed only from the server's
 * address and port with our id and question; a truncated answer is asked again over TCP; a
 * silent server is skipped for the next one.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { resolveDirect } from '../../../src/native/dns-client.js';
import { eventually, NO_DEADLINE_MS } from '../../helpers/eventually.js';

type Zone = Record<string, { a?: string[]; aaaa?: string[] }>;

function reply(q: Buffer, zone: Zone, o: { tc?: boolean } = {}): Buffer {
  let off = 12;
  const labels: string[] = [];
  while (q[off] !== 0) {
    labels.push(q.subarray(off + 1, off + 1 + q[off]!).toString());
    off += q[off]! + 1;
  }
  const n = labels.join('.');
  const type = q.readUInt16BE(off + 1);
  off += 5;
  const h = Buffer.from(q.subarray(0, off));
  h.writeUInt16BE(0x8180 | (o.tc ? 0x0200 : 0), 2);
  const z = zone[n];
  if (!z) {
    h.writeUInt16BE(0x8183, 2);
    return h;
  }
  const addrs = (type === 1 ? z.a : z.aaaa) ?? [];
  if (o.tc) return h;
  h.writeUInt16BE(addrs.length, 6);
  const rrs = addrs.map((a) => {
    const rd =
      type === 1 ? Buffer.from(a.split('.').map(Number)) : Buffer.from(a.replace(/:/g, ''), 'hex');
    return Buffer.concat([Buffer.of(0xc0, 12, 0, type, 0, 1, 0, 0, 0, 60, 0, rd.length), rd]);
  });
  return Buffer.concat([h, ...rrs]);
}

const open: (UdpSocket | Server)[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function udpServer(
  addr: string,
  port: number,
  handle: (m: Buffer, r: { address: string; port: number }, s: UdpSocket) => void,
): Promise<number> {
  const s = createSocket('udp4');
  open.push(s);
  s.on('message', (m, r) => handle(m, r, s));
  await new Promise<void>((res) => s.bind(port, addr, () => res()));
  return s.address().port;
}

async function tcpServer(addr: string, port: number, zone: Zone): Promise<void> {
  const srv = createServer((c) => {
    let b = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      b = Buffer.concat([b, d]);
      if (b.length < 2 || b.length < 2 + b.readUInt16BE(0)) return;
      const a = reply(b.subarray(2, 2 + b.readUInt16BE(0)), zone);
      c.end(Buffer.concat([Buffer.of(a.length >> 8, a.length & 0xff), a]));
    });
  });
  open.push(srv);
  await new Promise<void>((res) => srv.listen(port, addr, () => res()));
}

const zone: Zone = {
  'vpn.test': { a: ['192.0.2.7'], aaaa: ['2001:0db8:0000:0000:0000:0000:0000:0053'] },
};

describe('resolveDirect', () => {
  // A server that answers is asked with no deadline of its own (the default is 1.5 s, and the
  // forged-reply test's answer comes on a timer of the server's): the test's timeout bounds it.
  it('IPv4 then IPv6 addresses from the server', async () => {
    const port = await udpServer('127.0.0.1', 0, (m, r, s) =>
      s.send(reply(m, zone), r.port, r.address),
    );
    expect(
      await resolveDirect('vpn.test', { servers: ['127.0.0.1'], port, timeoutMs: NO_DEADLINE_MS }),
    ).toEqual(['192.0.2.7', '2001:db8::53']);
  });

  it('a truncated answer is asked again over TCP', async () => {
    let udpAnswers = 0;
    const port = await udpServer('127.0.0.1', 0, (m, r, s) => {
      udpAnswers++;
      s.send(reply(m, zone, { tc: true }), r.port, r.address);
    });
    await tcpServer('127.0.0.1', port, zone);
    expect(
      await resolveDirect('vpn.test', { servers: ['127.0.0.1'], port, timeoutMs: NO_DEADLINE_MS }),
    ).toEqual(['192.0.2.7', '2001:db8::53']);
    expect(udpAnswers).toBe(2);
  });

  it('a forged reply from another port or with another id is not believed', async () => {
    const forger = createSocket('udp4');
    open.push(forger);
    await new Promise<void>((res) => forger.bind(0, '127.0.0.1', () => res()));
    const port = await udpServer('127.0.0.1', 0, (m, r, s) => {
      const forged = reply(m, { 'vpn.test': { a: ['203.0.113.66'], aaaa: [] } });
      forger.send(forged, r.port, r.address); // right id, wrong source port
      const wrongId = Buffer.from(forged);
      wrongId.writeUInt16BE((wrongId.readUInt16BE(0) + 1) & 0xffff, 0);
      s.send(wrongId, r.port, r.address); // right source, wrong id
      setTimeout(() => s.send(reply(m, zone), r.port, r.address), 20);
    });
    expect(
      await resolveDirect('vpn.test', { servers: ['127.0.0.1'], port, timeoutMs: NO_DEADLINE_MS }),
    ).toEqual(['192.0.2.7', '2001:db8::53']);
  });

  it('a silent server is skipped for the next one', async () => {
    let asked = 0;
    const port = await udpServer('127.0.0.2', 0, () => void asked++);
    await udpServer('127.0.0.1', port, (m, r, s) => s.send(reply(m, zone), r.port, r.address));
    // The timeouts on a fake clock, moved once the silent server has the questions: on a real
    // one the next server's answer raced the same 300 ms, which a loaded machine can lose.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const answer = resolveDirect('vpn.test', {
        servers: ['127.0.0.2', '127.0.0.1'],
        port,
        timeoutMs: 300,
      });
      await eventually(() => expect(asked).toBe(2)); // polled on real timers
      vi.advanceTimersByTime(300);
      expect(await answer).toEqual(['192.0.2.7', '2001:db8::53']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('NXDOMAIN, no server, not a host name: rejected', async () => {
    const port = await udpServer('127.0.0.1', 0, (m, r, s) =>
      s.send(reply(m, zone), r.port, r.address),
    );
    await expect(
      resolveDirect('gone.test', { servers: ['127.0.0.1'], port, timeoutMs: NO_DEADLINE_MS }),
    ).rejects.toThrow(/NXDOMAIN/);
    await expect(resolveDirect('vpn.test', { servers: [] })).rejects.toThrow(/no resolver/);
    await expect(resolveDirect('vpn.test', { servers: ['not-an-ip'] })).rejects.toThrow(
      /no resolver/,
    );
    await expect(
      resolveDirect('a b', { servers: ['127.0.0.1'], port, timeoutMs: NO_DEADLINE_MS }),
    ).rejects.toThrow(/not a host name/);
  });
});
