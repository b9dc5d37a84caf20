import { describe, expect, it } from 'vitest';
import { hexOf, ipv4, makePair } from './harness.js';
import { RateLimiter, rateLimitKey } from '../../../src/dataplane/device/ratelimiter.js';
import { withPrefix } from '../../../src/dataplane/awg/prefix.js';
import { headerMatches, pickHeader } from '../../../src/dataplane/awg/magic-header.js';
import { scriptedRandom, seededRandom } from '../../../src/dataplane/awg/random.fake.js';
import { range } from '../../../src/dataplane/awg/range.js';
import type { Datagram } from '../../../src/dataplane/conn/memory.fake.js';

const ping = (n: number) => ipv4('192.168.0.1', '192.168.0.2', `ping ${n}`);
const fromA = (d: Datagram) => d.from.address === '10.0.0.1';
const isResp = (d: Datagram) => d.data.length === 92 && d.data[0] === 2;

describe('lossy, delayed and reordered network', () => {
  it('reordered transport packets are all delivered once; duplicates are dropped', async () => {
    const { a, b, net } = await makePair();
    a.tun.inject(ping(0));
    net.flush();
    net.hold = true;
    for (let i = 1; i <= 20; i++) a.tun.inject(ping(i));
    const held = [...net.held];
    expect(held.length).toBe(20);
    net.hold = false;
    net.release(held.map((_, i) => held.length - 1 - i)); // reverse order
    net.flush();
    expect(b.tun.written.length).toBe(21);
    expect(new Set(b.tun.written.map(hexOf)).size).toBe(21);
    for (const d of held) a.bind.send([d.data], d.to); // replay them all
    net.flush();
    expect(b.tun.written.length).toBe(21);
  });

  it('delayed delivery on the simulated clock', async () => {
    const { a, b, net, advance } = await makePair();
    net.delayMs = 300;
    a.tun.inject(ping(1));
    net.flush();
    expect(b.tun.written.length).toBe(0);
    advance(1_000, 50);
    expect(b.tun.written.length).toBe(1);
  });

  it('a lost response is recovered by retransmission', async () => {
    const { a, b, net, advance } = await makePair();
    let dropped = 0;
    net.dropIf = (d) => isResp(d) && dropped++ === 0;
    a.tun.inject(ping(1));
    net.flush();
    expect(b.tun.written.length).toBe(0);
    advance(6_000);
    expect(b.tun.written.length).toBe(1);
  });

  it('simultaneous initiations converge on a working session', async () => {
    const { a, b, net, advance } = await makePair();
    await b.dev.configure({ peers: [{ publicKey: a.keys.publicKey, endpoint: '10.0.0.1:51820' }] });
    net.hold = true;
    a.tun.inject(ping(1));
    b.tun.inject(ipv4('192.168.0.2', '192.168.0.1', 'pong'));
    net.hold = false;
    net.release();
    net.flush();
    advance(30_000);
    a.tun.inject(ping(2));
    b.tun.inject(ipv4('192.168.0.2', '192.168.0.1', 'pong 2'));
    net.flush();
    expect(b.tun.written.map((p) => Buffer.from(p.subarray(20)).toString())).toContain('ping 2');
    expect(a.tun.written.map((p) => Buffer.from(p.subarray(20)).toString())).toContain('pong 2');
  });
});

describe('handshake replay and flood protection', () => {
  it('a replayed initiation gets no response', async () => {
    const { a, net } = await makePair();
    a.tun.inject(ping(1));
    net.flush();
    const init = net.sent.find((d) => fromA(d) && d.data.length === 148)!;
    const responses = () => net.sent.filter(isResp).length;
    expect(responses()).toBe(1);
    a.bind.send([init.data], init.to);
    net.flush();
    expect(responses()).toBe(1);
  });

  it('initiations from one peer faster than HANDSHAKE_INITIATION_RATE are dropped', async () => {
    const { a, b, net, advance, clock } = await makePair();
    net.hold = true;
    a.tun.inject(ping(1));
    const first = net.held.splice(0);
    advance(5_500); // A retransmits with a fresh timestamp
    const second = net.held.splice(0).filter((d) => d.data.length === 148);
    expect(second.length).toBe(1);
    net.hold = false;
    for (const d of [...first, ...second]) a.bind.send([d.data], d.to); // both arrive within 20 ms
    net.flush();
    expect(net.sent.filter((d) => isResp(d) && d.from.address === '10.0.0.2').length).toBe(1);
    expect(clock.now()).toBeGreaterThan(5_000);
    expect(b.dev.peerStatusByKey(a.keys.publicKey)).not.toBeNull();
  });
});

describe('rate limiter (20/s, burst 5 per IPv4 address or IPv6 /64)', () => {
  it('allows a burst of 5 then one per 50 ms', () => {
    const r = new RateLimiter();
    const ok = (t: number) => r.allow('10.0.0.1', t);
    expect([1, 2, 3, 4, 5, 6].map(() => ok(0))).toEqual([true, true, true, true, true, false]);
    expect(ok(49)).toBe(false);
    expect(ok(50)).toBe(true);
    expect(r.allow('10.0.0.2', 50)).toBe(true); // separate bucket
    expect([0, 1, 2, 3, 4, 5].map(() => ok(10_000))).toEqual([true, true, true, true, true, false]);
  });
  it('keys IPv6 sources by /64: another address in the same /64 shares the bucket', () => {
    const r = new RateLimiter();
    // a host owning 2001:db8:1:2::/64 rotates its source address on every packet
    const same64 = [1, 2, 3, 4, 5, 6].map((i) =>
      r.allow(`2001:db8:1:2:${i.toString(16)}::${i}`, 0),
    );
    expect(same64).toEqual([true, true, true, true, true, false]);
    expect(r.allow('2001:db8:1:2:ffff:ffff:ffff:ffff', 0)).toBe(false);
    expect(r.allow('2001:db8:1:3::1', 0)).toBe(true); // the neighbouring /64: its own bucket
    expect(r.allow('2001:db8:1:2::9%eth0', 0)).toBe(false); // a zone does not make a new source
  });
  it('an IPv4-mapped IPv6 source is its IPv4 address; IPv4 keys by the whole address', () => {
    const r = new RateLimiter();
    expect([1, 2, 3, 4, 5].map(() => r.allow('192.0.2.7', 0))).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(r.allow('::ffff:192.0.2.7', 0)).toBe(false);
    expect(r.allow('192.0.2.8', 0)).toBe(true);
    expect(rateLimitKey('::ffff:192.0.2.7')).toBe(rateLimitKey('192.0.2.7'));
    expect(rateLimitKey('2001:db8::1')).toBe(rateLimitKey('2001:db8::ffff:1'));
    expect(rateLimitKey('2001:db8::1')).not.toBe(rateLimitKey('2001:db8:0:1::1'));
  });
});

describe('S prefix and magic header primitives', () => {
  it('prefix golden bytes', () => {
    const d = withPrefix(
      3,
      Uint8Array.of(9, 9),
      2,
      scriptedRandom({ bytes: [Uint8Array.of(1, 2, 3)] }),
    );
    expect(hexOf(d)).toBe('01020309090000');
    expect(hexOf(withPrefix(0, Uint8Array.of(7), 0, scriptedRandom({})))).toBe('07');
  });
  it('header draws are inclusive and matching honours the type hash', () => {
    expect(pickHeader(range(10, 12), scriptedRandom({ ints: [2] }))).toBe(12);
    const d = Uint8Array.of(0, 0, 11, 0, 0, 0);
    expect(headerMatches(d, 2, range(10, 12))).toBe(true);
    expect(headerMatches(d, 2, range(13, 20))).toBe(false);
    expect(
      headerMatches(Uint8Array.of(11 ^ 0xff, 0xff, 0xff, 0xff), 0, range(11), 0xffffffff),
    ).toBe(true);
  });
});

describe('reconfiguration failures', () => {
  it('a listen port in use fails the whole set and keeps the device working', async () => {
    const { a, b, net } = await makePair();
    const squatter = net.bind('10.0.0.1');
    await squatter.open(40_001);
    const keyBefore = a.dev.ipcGet();
    await expect(a.dev.ipcSet('set=1\nlisten_port=40001\nfwmark=9\n\n')).rejects.toMatchObject({
      errno: -98,
    });
    expect(a.dev.ipcGet()).toBe(keyBefore);
    a.tun.inject(ping(7));
    net.flush();
    expect(b.tun.written.length).toBe(1);
  });
});

describe('garbage input', () => {
  it('random datagrams and TUN packets are dropped without errors', async () => {
    const logs: string[] = [];
    const { a, b, net } = await makePair({
      device: { log: (level, m) => level === 'warn' && logs.push(m) },
      awgA: { s1: 8, s4: 4, h1: range(100, 110), h4: range(200, 210) },
    });
    a.tun.inject(ping(1));
    net.flush();
    const rng = seededRandom(7);
    const evil = net.bind('10.6.6.6');
    await evil.open(1);
    for (let i = 0; i < 3000; i++) {
      const d = rng.bytes(rng.intn(260));
      if (d.length >= 12 && rng.intn(2)) {
        const off = [0, 8, 4][rng.intn(3)]!;
        d[off] = [1, 2, 3, 4, 100, 200][rng.intn(6)]!;
        d[off + 1] = d[off + 2] = d[off + 3] = 0;
      }
      evil.send([d], { address: '10.0.0.2', port: 51821 });
      b.tun.inject(rng.bytes(rng.intn(80)));
    }
    net.flush();
    expect(logs).toEqual([]);
    a.tun.inject(ping(2));
    net.flush();
    expect(b.tun.written.length).toBe(2);
  });
});
