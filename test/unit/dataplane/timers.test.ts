import { describe, expect, it } from 'vitest';
import { ipv4, makePair } from './harness.js';
import { HANDSHAKE_EVENT_DELAY_MS } from '../../../src/dataplane/device/device.js';
import type { Datagram } from '../../../src/dataplane/conn/memory.fake.js';
import { range } from '../../../src/dataplane/awg/range.js';

const PING = ipv4('192.168.0.1', '192.168.0.2', 'ping');
const PONG = ipv4('192.168.0.2', '192.168.0.1', 'pong');
const fromA = (d: Datagram) => d.from.address === '10.0.0.1';
const fromB = (d: Datagram) => d.from.address === '10.0.0.2';
const isInit = (d: Datagram) => d.data.length === 148 && d.data[0] === 1;
const isKeepalive = (d: Datagram) => d.data.length === 32 && d.data[0] === 4;

describe('timers with a simulated clock', () => {
  it('passive keepalive: the receiver of data answers with a keepalive after KEEPALIVE_TIMEOUT', async () => {
    const { a, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    const before = net.sent.filter((d) => fromB(d) && isKeepalive(d)).length;
    advance(9_900);
    expect(net.sent.filter((d) => fromB(d) && isKeepalive(d)).length).toBe(before);
    advance(200);
    expect(net.sent.filter((d) => fromB(d) && isKeepalive(d)).length).toBe(before + 1);
  });

  it('persistent keepalive: one at up (which handshakes), then every interval', async () => {
    const { net, advance, a, b } = await makePair({ persistentKeepaliveA: 25 });
    net.flush();
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    const count = () => net.sent.filter((d) => fromA(d) && isKeepalive(d)).length;
    const c0 = count();
    advance(100_000, 500);
    expect(count() - c0).toBe(4);
  });

  it('retransmits the initiation every REKEY_TIMEOUT+jitter and gives up after 20 attempts', async () => {
    const { a, net, advance } = await makePair();
    net.dropIf = fromA;
    const failed: unknown[] = [];
    a.dev.on('handshake-failed', (e) => failed.push(e));
    a.tun.inject(PING);
    net.flush();
    expect(net.sent.filter(isInit).length).toBe(1);
    advance(5_000);
    expect(net.sent.filter(isInit).length).toBe(1);
    advance(400);
    expect(net.sent.filter(isInit).length).toBe(2);
    advance(200_000, 250);
    expect(net.sent.filter(isInit).length).toBe(20);
    expect(failed.length).toBe(1);
    // staged data was dropped: a late success does not deliver it
    net.dropIf = null;
  });

  it('per-peer initiation rate limit: bursts of data send one initiation', async () => {
    const { a, net } = await makePair();
    net.hold = true;
    for (let i = 0; i < 10; i++) a.tun.inject(PING);
    expect(net.held.filter(isInit).length).toBe(1);
  });

  it('rekey after time: the initiator re-handshakes when sending after REKEY_AFTER_TIME', async () => {
    const { a, b, net, advance } = await makePair();
    let handshakes = 0;
    a.dev.on('handshake', () => handshakes++);
    for (let t = 0; t < 13; t++) {
      a.tun.inject(PING);
      net.flush();
      b.tun.inject(PONG);
      net.flush();
      advance(10_000);
    }
    advance(HANDSHAKE_EVENT_DELAY_MS); // the second completed at the last step
    expect(handshakes).toBe(2);
    expect(net.sent.filter((d) => fromA(d) && isInit(d)).length).toBe(2);
    expect(b.tun.written.length).toBe(13);
  });

  it('rekey after messages (lowered limit)', async () => {
    const { a, net, advance } = await makePair({ device: { rekeyAfterMessages: 10 } });
    for (let i = 0; i < 15; i++) {
      a.tun.inject(PING);
      net.flush();
      advance(1_000);
    }
    expect(net.sent.filter((d) => fromA(d) && isInit(d)).length).toBe(2);
  });

  it('reject after messages: a keypair at the limit is not used; data waits for a new session', async () => {
    const { a, b, net, advance } = await makePair({
      device: { rejectAfterMessages: 5, rekeyAfterMessages: 1000 },
    });
    for (let i = 0; i < 8; i++) {
      a.tun.inject(PING);
      net.flush();
      advance(6_000);
    }
    expect(b.tun.written.length).toBe(8);
    expect(net.sent.filter((d) => fromA(d) && isInit(d)).length).toBeGreaterThanOrEqual(2);
  });

  it('new handshake when data sent gets no authenticated reply within KEEPALIVE+REKEY_TIMEOUT', async () => {
    const { a, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    advance(20_000);
    net.dropIf = fromB;
    const inits = () => net.sent.filter((d) => fromA(d) && isInit(d)).length;
    expect(inits()).toBe(1);
    a.tun.inject(PING);
    net.flush();
    advance(15_000);
    expect(inits()).toBe(1);
    advance(400);
    expect(inits()).toBe(2);
  });

  it('reject after time: an old session is not used for sending', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    net.dropIf = () => true;
    advance(181_000, 1000);
    const sentBefore = net.sent.length;
    a.tun.inject(PING);
    net.flush();
    const out = net.sent.slice(sentBefore);
    expect(out.every((d) => !(d.data[0] === 4))).toBe(true); // no transport, only an initiation
    expect(out.some(isInit)).toBe(true);
    expect(b.tun.written.length).toBe(1);
  });

  it('the data that waited for the handshake leaves first; the timers after it are those of a finished handshake', async () => {
    const { a, b, net } = await makePair();
    const p = a.dev.peerByKey(b.keys.publicKey)!;
    const events: string[] = [];
    a.dev.on('handshake', () => events.push('handshake'));
    a.tun.inject(PING);
    expect(p.timers.retransmitHandshake.isPending).toBe(true);
    net.flush();
    expect(b.tun.written.length).toBe(1);
    // the staged ping went out: it armed the new-handshake timer, which the response's
    // arrival (before it) did not disarm afterwards
    expect(p.timers.newHandshake.isPending).toBe(true);
    expect(p.timers.retransmitHandshake.isPending).toBe(false);
    expect(p.timers.zeroKeyMaterial.isPending).toBe(true);
    expect(p.timers.handshakeAttempts).toBe(0);
    expect(p.handshakePendingSince).toBeNull();
    expect(p.lastHandshakeWall).toBeGreaterThan(0);
    expect(events).toEqual([]); // emitted HANDSHAKE_EVENT_DELAY_MS later
  });

  it('zero key material after 3 × REJECT_AFTER_TIME of silence', async () => {
    const { a, b, net, advance } = await makePair();
    a.tun.inject(PING);
    net.flush();
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    advance(539_000, 1000);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    advance(2_000, 1000);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(false);
  });

  it('down stops timers and drops sessions; up again re-handshakes', async () => {
    const { a, b, net, advance, clock } = await makePair({ persistentKeepaliveA: 5 });
    net.flush();
    await a.dev.down();
    expect(a.dev.state).toBe('down');
    const n = net.sent.length;
    advance(60_000);
    expect(net.sent.filter(fromA).length).toBe(net.sent.slice(0, n).filter(fromA).length);
    await a.dev.up();
    net.flush();
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    expect(clock.now()).toBeGreaterThan(0);
  });
});

describe('cookie reply under load', () => {
  it('responder under load answers with a cookie; the retry with mac2 succeeds', async () => {
    const { a, b, net, advance } = await makePair({ deviceB: { underLoadThreshold: 1 } });
    a.tun.inject(PING);
    net.flush();
    const cookies = net.sent.filter((d) => fromB(d) && d.data.length === 64 && d.data[0] === 3);
    expect(cookies.length).toBe(1);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(false);
    advance(5_400);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    // the retried initiation carried a non-zero mac2
    const inits = net.sent.filter((d) => fromA(d) && isInit(d));
    expect(inits[0]!.data.subarray(132).every((x) => x === 0)).toBe(true);
    expect(inits[1]!.data.subarray(132).some((x) => x !== 0)).toBe(true);
    expect(b.tun.written.length).toBe(1); // the staged packet went out once the session existed
  });

  it('cookie path with S3/H3 framing and header protection', async () => {
    const awg = {
      s1: 16,
      s2: 17,
      s3: 18,
      s4: 19,
      h1: range(100, 200),
      h2: range(300, 400),
      h3: range(500, 600),
      h4: range(700, 800),
      headerProtectionKey: new Uint8Array(32).fill(9),
    };
    const { a, b, net, advance } = await makePair({
      deviceB: { underLoadThreshold: 1 },
      awgA: awg,
    });
    a.tun.inject(PING);
    net.flush();
    expect(net.sent.filter((d) => fromB(d) && d.data.length === 18 + 64).length).toBe(1);
    advance(5_400);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    expect(b.tun.written.length).toBe(1);
  });

  it('disable_cookies: no cookie reply is ever sent', async () => {
    const { a, b, net, advance } = await makePair({
      deviceB: { underLoadThreshold: 1 },
      awgB: { disableCookies: true },
    });
    a.tun.inject(PING);
    net.flush();
    advance(20_000);
    expect(net.sent.filter((d) => fromB(d) && d.data.length === 64).length).toBe(0);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(false);
  });
});

describe('endpoints', () => {
  it('roaming: authenticated packets from a new address move the endpoint; garbage does not', async () => {
    const { a, b, net } = await makePair();
    const moves: string[] = [];
    b.dev.on('endpoint', (e) => moves.push(`${e.endpoint.address}:${e.endpoint.port}`));
    a.tun.inject(PING);
    net.flush();
    a.bind.moveTo('10.9.9.9');
    a.tun.inject(PING);
    net.flush();
    expect(b.dev.peerStatusByKey(a.keys.publicKey)!.endpoint).toEqual({
      address: '10.9.9.9',
      port: 51820,
    });
    b.tun.inject(PONG);
    net.flush();
    expect(a.tun.written.length).toBe(1);
    // forged transport from elsewhere
    const evil = net.bind('10.6.6.6');
    await evil.open(1);
    const forged = Uint8Array.from(
      net.sent.filter((d) => d.from.address === '10.9.9.9' && d.data[0] === 4).at(-1)!.data,
    );
    forged[40]! ^= 0xff;
    evil.send([forged], { address: '10.0.0.2', port: 51821 });
    net.flush();
    expect(b.dev.peerStatusByKey(a.keys.publicKey)!.endpoint!.address).toBe('10.9.9.9');
    expect(moves).toEqual(['10.0.0.1:51820', '10.9.9.9:51820']);
  });

  it('hostname endpoints resolve at up and re-resolve after repeated handshake failures', async () => {
    let answer = '10.0.0.2';
    const resolves: string[] = [];
    const resolver = { resolve: async (h: string) => (resolves.push(h), [answer]) };
    const { a, b, net, advance } = await makePair({ device: { resolver } });
    await a.dev.down();
    await a.dev.configure({
      peers: [{ publicKey: b.keys.publicKey, endpoint: 'peer-b.example:51821' }],
    });
    await a.dev.up();
    expect(resolves).toEqual(['peer-b.example']);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.endpoint).toEqual({
      address: '10.0.0.2',
      port: 51821,
    });
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.length).toBe(1);
    // B moves; DNS follows; A's retries re-resolve and reach it
    b.bind.moveTo('10.0.0.3');
    answer = '10.0.0.3';
    await a.dev.down();
    await a.dev.configure({ peers: [{ publicKey: b.keys.publicKey, endpoint: '10.0.0.2:51821' }] });
    await a.dev.configure({
      peers: [{ publicKey: b.keys.publicKey, endpoint: 'peer-b.example:51821' }],
    });
    resolver.resolve = async (h: string) => (
      resolves.push(h),
      [resolves.length > 2 ? answer : '10.0.0.2']
    );
    await a.dev.up();
    a.tun.inject(PING);
    net.flush();
    for (let i = 0; i < 40 && b.tun.written.length < 2; i++) {
      advance(1_000);
      await new Promise((r) => setImmediate(r));
      net.flush();
    }
    expect(resolves.length).toBeGreaterThanOrEqual(3);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.endpoint!.address).toBe('10.0.0.3');
    expect(b.tun.written.length).toBe(2);
  });
});
