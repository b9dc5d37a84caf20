import { describe, expect, it } from 'vitest';
import { ipv4, makePair } from './harness.js';
import type { Datagram } from '../../../src/dataplane/conn/memory.fake.js';
import { HANDSHAKE_EVENT_DELAY_MS } from '../../../src/dataplane/device/device.js';

const PING = ipv4('192.168.0.1', '192.168.0.2', 'ping');
const fromA = (d: Datagram) => d.from.port === 51820;
const isInit = (d: Datagram) => d.data.length === 148 && d.data[0] === 1;
const isTransport = (d: Datagram) => d.data[0] === 4;

describe('probePeer: a handshake on demand', () => {
  it('sends an initiation even while a session exists; the answer completes a new handshake', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    const first = a.dev.peerStatusByKey(b.keys.publicKey)!.lastHandshakeTime;
    expect(first).toBeGreaterThan(0);
    advance(10_000);
    const handshakes: boolean[] = [];
    a.dev.on('handshake', (e) => handshakes.push(e.initiator));
    const sent = net.sent.length;
    expect(a.dev.probePeer(b.keys.publicKey)).toBe(true);
    expect(net.sent.slice(sent).filter((d) => fromA(d) && isInit(d))).toHaveLength(1);
    net.flush();
    advance(HANDSHAKE_EVENT_DELAY_MS);
    expect(handshakes).toEqual([true]);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.lastHandshakeTime).toBeGreaterThan(first);
  });

  it('is rate limited like any initiation (one per rekey timeout)', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    advance(10_000);
    const sent = net.sent.length;
    a.dev.probePeer(b.keys.publicKey);
    a.dev.probePeer(b.keys.publicKey);
    expect(net.sent.slice(sent).filter((d) => fromA(d) && isInit(d))).toHaveLength(1);
    advance(5_100);
    a.dev.probePeer(b.keys.publicKey);
    expect(net.sent.slice(sent).filter((d) => fromA(d) && isInit(d))).toHaveLength(2);
  });

  it('brings back a peer whose handshake gave up, without traffic', async () => {
    const { a, b, net, advance } = await makePair();
    const failed: string[] = [];
    a.dev.on('handshake-failed', () => failed.push('gave up'));
    net.dropIf = () => true;
    a.tun.inject(PING);
    advance(120_000, 1_000);
    expect(failed).toEqual(['gave up']);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(false);
    net.dropIf = null;
    expect(a.dev.probePeer(b.keys.publicKey)).toBe(true);
    net.flush();
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
  });

  it('is false for an unknown peer and on a device that is down', async () => {
    const { a, b } = await makePair();
    expect(a.dev.probePeer(new Uint8Array(32).fill(9))).toBe(false);
    await a.dev.down();
    expect(a.dev.probePeer(b.keys.publicKey)).toBe(false);
  });
});

describe('kickPeer: after an underlay change', () => {
  it('sends a keepalive on a live session, so the peer learns our new address at once', async () => {
    const { a, b, net } = await makePair();
    a.tun.inject(PING);
    net.flush();
    a.bind.moveTo('10.0.0.7');
    const sent = net.sent.length;
    expect(a.dev.kickPeer(b.keys.publicKey)).toBe(true);
    const out = net.sent.slice(sent);
    expect(out.map((d) => [d.from.address, isTransport(d)])).toEqual([['10.0.0.7', true]]);
    net.flush();
    expect(b.dev.peerStatusByKey(a.keys.publicKey)!.endpoint).toEqual({
      address: '10.0.0.7',
      port: 51820,
    });
    expect(b.tun.written).toHaveLength(1); // a keepalive, not data
  });

  it('without a session sends nothing (no handshake is started)', async () => {
    const { a, b, net } = await makePair();
    const sent = net.sent.length;
    expect(a.dev.kickPeer(b.keys.publicKey)).toBe(true);
    expect(net.sent.length).toBe(sent);
  });

  it('re-resolves a hostname endpoint', async () => {
    let answer = '10.0.0.2';
    const resolves: string[] = [];
    const resolver = { resolve: async (h: string) => (resolves.push(h), [answer]) };
    const { a, b } = await makePair({ device: { resolver } });
    await a.dev.configure({
      peers: [{ publicKey: b.keys.publicKey, endpoint: 'peer-b.example:51821' }],
    });
    expect(resolves).toEqual(['peer-b.example']);
    answer = '10.0.0.3';
    const moved = new Promise<string>((r) => a.dev.once('endpoint', (e) => r(e.endpoint.address)));
    expect(a.dev.kickPeer(b.keys.publicKey)).toBe(true);
    expect(await moved).toBe('10.0.0.3');
    expect(resolves).toEqual(['peer-b.example', 'peer-b.example']);
  });

  it('is false for an unknown peer and on a device that is down', async () => {
    const { a, b } = await makePair();
    expect(a.dev.kickPeer(new Uint8Array(32).fill(9))).toBe(false);
    await a.dev.down();
    expect(a.dev.kickPeer(b.keys.publicKey)).toBe(false);
  });
});

describe('the data path (health: handshakes answered, data dropped)', () => {
  const toA = (d: Datagram) => d.to.port === 51820;
  const summary = (dev: Awaited<ReturnType<typeof makePair>>['a']['dev'], key: Uint8Array) =>
    dev.peerSummaries().find((p) => Buffer.from(p.publicKey).equals(Buffer.from(key)))!;

  const PONG = ipv4('192.168.0.2', '192.168.0.1', 'pong');

  it('data sent and no transport message back: dataUnansweredMs grows from the first send, across answered handshakes', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    b.tun.inject(PONG);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey)).toMatchObject({
      dataUnansweredMs: 0,
      lastRxKeepalive: false,
    });
    // DPI: every transport message to b dropped, handshakes pass
    net.dropIf = (d) => isTransport(d) && !toA(d);
    a.tun.inject(PING);
    net.flush();
    advance(3_000);
    a.tun.inject(PING);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey).dataUnansweredMs).toBeGreaterThanOrEqual(3_000);
    // the rekey the unanswered data causes is answered; the data stays unanswered
    advance(20_000, 500);
    net.flush();
    const s = summary(a.dev, b.keys.publicKey);
    expect(s.lastHandshakeTime).toBeGreaterThan(0);
    expect(s.dataUnansweredMs).toBeGreaterThanOrEqual(23_000);
  });

  it('a keepalive armed before the fault does not answer data sent after it', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    b.tun.inject(PONG);
    net.flush();
    // b received data and sent nothing since: its keepalive is due in KEEPALIVE_TIMEOUT
    a.tun.inject(PING);
    net.flush();
    advance(1_000);
    net.dropIf = (d) => isTransport(d) && !toA(d);
    const sent = net.sent.length;
    a.tun.inject(PING);
    net.flush();
    advance(9_500, 500);
    net.flush();
    // b's keepalive came, yet the series that began at the fault goes on
    const keepalive = (d: Datagram) => toA(d) && isTransport(d) && d.data.length === 32;
    expect(net.sent.slice(sent).filter(keepalive)).toHaveLength(1);
    expect(summary(a.dev, b.keys.publicKey).dataUnansweredMs).toBeGreaterThanOrEqual(9_000);
  });

  it('a data probe from our address reaches the peer as TTL 1, protocol 253, to TEST-NET and to its endpoint address; its answer ends the series', async () => {
    const { a, b, net } = await makePair();
    a.tun.inject(PING);
    net.flush();
    b.tun.inject(PONG);
    net.flush();
    const onB = b.tun.written.length;
    expect(a.dev.probePeer(b.keys.publicKey, true, '192.168.0.1')).toBe(true);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey).dataUnansweredMs).toBeGreaterThan(0);
    const pkt = Buffer.from(b.tun.written[onB]!);
    expect(pkt.length).toBe(20);
    expect([pkt[0], pkt[8], pkt[9]]).toEqual([0x45, 1, 253]);
    expect([...pkt.subarray(12, 20)]).toEqual([192, 168, 0, 1, 192, 0, 2, 1]);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += pkt.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
    // the second: to the peer's endpoint address (10.0.0.2), which a kernel that does not
    // forward takes as its own and answers (protocol unreachable)
    expect(b.tun.written.length).toBe(onB + 2);
    const own = Buffer.from(b.tun.written[onB + 1]!);
    expect([own.length, own[0], own[8], own[9]]).toEqual([20, 0x45, 1, 253]);
    expect([...own.subarray(12, 20)]).toEqual([192, 168, 0, 1, 10, 0, 0, 2]);
    sum = 0;
    for (let i = 0; i < 20; i += 2) sum += own.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
    // the peer's kernel answers at once (time exceeded): any data message back
    b.tun.inject(PONG);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey).dataUnansweredMs).toBe(0);
    // an IPv6 source: hop limit 1, next header 253, to 2001:db8::1; not to the IPv4 endpoint
    const before6 = b.tun.written.length;
    expect(a.dev.probePeer(b.keys.publicKey, true, 'fd00::1')).toBe(true);
    net.flush();
    expect(b.tun.written.length).toBe(before6 + 1);
    const p6 = Buffer.from(b.tun.written.at(-1)!);
    expect([p6.length, p6[0], p6[6], p6[7], p6.readUInt32BE(24), p6.readUInt32BE(36)]).toEqual([
      40, 0x60, 253, 1, 0x20010db8, 1,
    ]);
  });

  it('a data probe without a source is answered by a keepalive (not stale: the series is old) and leaves nothing on the peer TUN', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    b.tun.inject(PONG);
    net.flush();
    net.dropIf = (d) => isTransport(d) && !toA(d);
    a.tun.inject(PING);
    net.flush();
    // past the rekey the unanswered data causes (its response would cancel b's keepalive)
    advance(16_000, 500);
    net.flush();
    net.dropIf = null;
    const onB = b.tun.written.length;
    expect(a.dev.probePeer(b.keys.publicKey, true)).toBe(true);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey).dataUnansweredMs).toBeGreaterThan(15_000);
    advance(10_500, 500);
    net.flush();
    expect(summary(a.dev, b.keys.publicKey)).toMatchObject({
      dataUnansweredMs: 0,
      lastRxKeepalive: true,
    });
    expect(b.tun.written.length).toBe(onB);
  });
});
