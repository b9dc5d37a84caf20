import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../src/dataplane/conn/bind.js';
import { NativeUdpBind, formatAddress } from '../../../src/dataplane/conn/native-udp.js';

const linux = process.platform === 'linux';

describe('formatAddress', () => {
  it('prints IPv6 as RFC 5952 text (as ipaddr.js does) and v4-mapped as IPv4', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (b, zeros) => {
        if (zeros) b.fill(0, 4, 4 + (b[0]! % 12)); // runs of zero words
        const isMapped =
          b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
        const want = isMapped
          ? [...b.subarray(12)].join('.')
          : (ipaddr.fromByteArray([...b]) as ipaddr.IPv6).toRFC5952String();
        expect(formatAddress(b, 0, 16)).toBe(want);
      }),
    );
    expect(formatAddress(Uint8Array.from([10, 0, 0, 1]), 0, 4)).toBe('10.0.0.1');
    const mapped = new Uint8Array(16);
    mapped.set([0xff, 0xff, 192, 0, 2, 1], 10);
    expect(formatAddress(mapped, 0, 16)).toBe('192.0.2.1');
  });
});

describe.skipIf(!linux)('NativeUdpBind (own socket, recvmmsg, sendmmsg, source of replies)', () => {
  const closers: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function dgram(
    host: string,
  ): Promise<{ s: Socket; got: Array<{ m: Buffer; from: string }> }> {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const got: Array<{ m: Buffer; from: string }> = [];
    s.on('message', (m, r) => got.push({ m, from: r.address }));
    s.bind(0, host);
    await once(s, 'listening');
    closers.push(() => new Promise<void>((r) => s.close(() => r())));
    return { s, got };
  }

  /**
   * A receiver whose queue holds a burst of 600 whether or not this thread gets to read while
   * the sender thread or libuv's pool sends it: a socket of ours (SO_RCVBUFFORCE, 4 MiB as
   * root). node:dgram's setRecvBufferSize is capped by net.core.rmem_max (208 KiB on a stock
   * kernel, about 270 small datagrams), and CI runs these tests in an idle cgroup that can wait
   * for a CPU while the burst goes out: the rest was dropped and the wait ran out.
   */
  async function roomy(): Promise<{ port: number; got: Array<{ m: Buffer; from: string }> }> {
    const n = new NativeUdpBind('127.0.0.1');
    const got: Array<{ m: Buffer; from: string }> = [];
    n.onReceive((d, from) => got.push({ m: Buffer.from(d), from: from.address }));
    const port = await n.open(0);
    closers.push(() => n.close());
    return { port, got };
  }

  /**
   * A loaded machine may run the rounds slower than the 2,000 datagrams a second that move the
   * sends off this thread. Sends of 500 to a sink (its drops do not matter), one after the other
   * in this turn of the loop, reach the rate whatever the machine's speed: they are not spread
   * over turns an idle cgroup may wait seconds between (CI had the one-second window start
   * again between them). They stop at the send that asks for the switch; that burst fits the
   * pool sender's ring (8 × 64). Bounded, so a product that never switches fails the test.
   */
  async function reachRate(b: NativeUdpBind): Promise<void> {
    const asked = () => (b as unknown as { threadAsked: boolean }).threadAsked;
    if (asked()) return;
    const sink = await dgram('127.0.0.1');
    const at = { address: '127.0.0.1', port: sink.s.address().port };
    for (let i = 0; i < 1000 && !asked(); i++)
      b.send(
        Array.from({ length: 500 }, () => Buffer.from('x')),
        at,
      );
    expect(asked()).toBe(true);
  }

  async function bind(): Promise<{
    b: NativeUdpBind;
    port: number;
    got: Array<{ d: Buffer; from: Endpoint }>;
    batches: () => number;
  }> {
    const b = new NativeUdpBind();
    const got: Array<{ d: Buffer; from: Endpoint }> = [];
    let batches = 0;
    b.onReceive((d, from) => got.push({ d: Buffer.from(d), from }));
    b.onBatchEnd(() => batches++);
    const port = await b.open(0);
    closers.push(() => b.close());
    return { b, port, got, batches: () => batches };
  }

  // a generous bound, not a timing assertion: CI runs the unit tests in an idle cgroup beside
  // the netns tests, where 600 datagrams through the sender thread took over the 2 s this was
  // After a stall of this process (an idle cgroup waits while both cores are busy), the timer
  // that ends the wait runs before the I/O that arrived meanwhile has been polled: the loop
  // polls a few more times before the wait is judged.
  const until = async (f: () => boolean, what: string | (() => string), boundMs = 30_000) => {
    const end = Date.now() + boundMs;
    while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 20 && !f(); i++) await new Promise((r) => setImmediate(r));
    if (!f()) throw new Error(`timed out: ${typeof what === 'string' ? what : what()}`);
  };

  it('receives bursts in order from IPv4 and IPv6 senders, in batches, with the local address', async () => {
    const { port, got, batches } = await bind();
    const v4 = await dgram('127.0.0.1');
    const v6 = await dgram('::1');
    for (let i = 0; i < 300; i++) v4.s.send(Buffer.from(`v4-${i}`), port, '127.0.0.1');
    await until(() => got.length === 300, '300 datagrams');
    expect(got.map((g) => g.d.toString())).toEqual(
      Array.from({ length: 300 }, (_, i) => `v4-${i}`),
    );
    expect(got[0]!.from).toEqual({
      address: '127.0.0.1',
      port: v4.s.address().port,
      src: '127.0.0.1',
      srcIfindex: undefined,
    });
    // consecutive datagrams of one sender share one endpoint object
    expect(got[1]!.from).toBe(got[0]!.from);
    expect(batches()).toBeLessThan(300);
    v6.s.send(Buffer.from('six'), port, '::1');
    await until(() => got.length === 301, 'the IPv6 datagram');
    expect(got[300]!.from).toMatchObject({ address: '::1', src: '::1' });
  });

  it('sends bursts in order to IPv4 and IPv6 endpoints; replies leave from the address that was reached', async () => {
    const { b, port, got } = await bind();
    const r = await dgram('127.0.0.1');
    // (a burst the receiver's default 208 KiB buffer holds)
    const bufs = Array.from({ length: 150 }, (_, i) => Buffer.from(`d-${i}`));
    b.send(bufs, { address: '127.0.0.1', port: r.s.address().port });
    await until(() => r.got.length === 150, '150 datagrams');
    expect(r.got.map((g) => g.m.toString())).toEqual(bufs.map(String));
    const r6 = await dgram('::1');
    b.send([Buffer.from('x')], { address: '::1', port: r6.s.address().port });
    await until(() => r6.got.length === 1, 'the IPv6 datagram');

    // reached at 127.0.0.2 (any 127/8 address is local): the reply comes from 127.0.0.2,
    // where the kernel's own choice for 127.0.0.1 would be 127.0.0.1
    r.s.send(Buffer.from('hello'), port, '127.0.0.2');
    await until(() => got.length === 1, 'hello');
    expect(got[0]!.from.src).toBe('127.0.0.2');
    b.send([Buffer.from('reply')], got[0]!.from);
    await until(() => r.got.length === 151, 'reply');
    expect(r.got[150]!.from).toBe('127.0.0.2');
    b.send([Buffer.from('plain')], { address: '127.0.0.1', port: r.s.address().port });
    await until(() => r.got.length === 152, 'plain');
    expect(r.got[151]!.from).toBe('127.0.0.1');

    // a source that is not ours: refused by the kernel, sent without it
    b.send([Buffer.from('fallback')], {
      address: '127.0.0.1',
      port: r.s.address().port,
      src: '192.0.2.77',
    });
    await until(() => r.got.length === 153, 'fallback');
    expect(r.got[152]!.from).toBe('127.0.0.1');
  });

  it('keeps copies of what the socket has no room for: the caller reuses its buffers at once', async () => {
    const { b } = await bind();
    const r = await dgram('127.0.0.1');
    const to = { address: '127.0.0.1', port: r.s.address().port };
    const inner = b as unknown as {
      tx: { send: (...a: unknown[]) => number; full: boolean };
      flushPending(): void;
    };
    const real = inner.tx;
    // a socket buffer with no room: nothing goes out, everything is queued for POLLOUT
    inner.tx = {
      send: (_b: unknown, _a: unknown, _p: unknown, start: unknown) => start as number,
      full: true,
    } as typeof real;
    const slab = Buffer.from('one|two|three');
    b.send([slab.subarray(0, 3), slab.subarray(4, 7), slab.subarray(8)], to);
    slab.fill(0x58); // the device seals its next batch into the same slab
    inner.tx = real;
    inner.flushPending();
    await until(() => r.got.length === 3, 'the queued datagrams');
    expect(r.got.map((g) => g.m.toString())).toEqual(['one', 'two', 'three']);
  });

  it('UDP GRO (opt-in): a GSO run looped back arrives as one buffer and is split into its datagrams, in order', async () => {
    const rx = new NativeUdpBind(undefined, { gro: true });
    const got: Buffer[] = [];
    rx.onReceive((d) => got.push(Buffer.from(d)));
    const port = await rx.open(0);
    closers.push(() => rx.close());
    expect(rx.groEnabled).toBe(true);
    const tx = new NativeUdpBind(undefined, { gso: true });
    const sport = await tx.open(0);
    closers.push(() => tx.close());
    const bufs = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1200, i + 1));
    bufs.push(Buffer.from('the short last one'));
    tx.send(bufs, { address: '127.0.0.1', port });
    await until(() => got.length === bufs.length, 'the run');
    expect(got.map((b) => b.toString('hex'))).toEqual(bufs.map((b) => b.toString('hex')));
    expect(rx.groStats.reads).toBeGreaterThan(0); // it did come coalesced
    expect(rx.groStats.segments).toBeGreaterThan(rx.groStats.reads);
    // without the option nothing is coalesced
    const plain = new NativeUdpBind(undefined, { gro: false });
    const got2: Buffer[] = [];
    plain.onReceive((d) => got2.push(Buffer.from(d)));
    const port2 = await plain.open(0);
    closers.push(() => plain.close());
    tx.send(bufs, { address: '127.0.0.1', port: port2 });
    await until(() => got2.length === bufs.length, 'the run, plain');
    expect(got2.map((b) => b.toString('hex'))).toEqual(bufs.map((b) => b.toString('hex')));
    expect(plain.groStats.reads).toBe(0);
    expect(sport).toBeGreaterThan(0);
  });

  it.each([
    ['the sender thread', false],
    ["libuv's pool (the pool sender)", true],
  ])(
    'under load sendmmsg moves to %s: in order, from the reached address, stopped before the socket closes',
    async (_, pool) => {
      const b = new NativeUdpBind(undefined, { sendThread: true, sendPool: pool });
      await b.open(0);
      const r = await roomy();
      const to = { address: '127.0.0.1', port: r.port };
      let seq = 0;
      // rounds of 64 the receiver's buffer holds; 2000 within a second start the thread
      const round = async (ep: Endpoint = to) => {
        const want = r.got.length + 64;
        b.send(
          Array.from({ length: 64 }, () => Buffer.from(`s-${seq++}`)),
          ep,
        );
        await until(() => r.got.length === want, `datagram ${want}`);
      };
      for (let i = 0; i < 40 && !b.sendThreaded; i++) await round();
      await reachRate(b);
      // the thread is a worker that loads its modules first: in CI's idle cgroup that took
      // over 30 s (Node 24)
      await until(
        () => {
          if (!b.sendThreaded) b.send([Buffer.from(`s-${seq++}`)], to); // the switch happens on a send
          return b.sendThreaded;
        },
        'the sender thread',
        120_000,
      );
      await until(() => r.got.length === seq, 'the rest');
      for (let i = 0; i < 20; i++) await round();
      expect(r.got.map((g) => g.m.toString())).toEqual(
        Array.from({ length: seq }, (_, i) => `s-${i}`),
      );
      // more bursts at once than the ring has slots (8 × 64): queued in order, none dropped
      const big = Array.from({ length: 600 }, (_, i) => Buffer.from(`b-${i}`));
      b.send(big, to);
      await until(
        () => r.got.length === seq + 600,
        () =>
          `the 600 (${r.got.length - seq} arrived, ${b.sendDropped} dropped by the sender, threaded ${b.sendThreaded})`,
      );
      expect(r.got.slice(seq).map((g) => g.m.toString())).toEqual(big.map(String));
      expect(b.sendDropped).toBe(0);
      // the source travels with the burst; a refused one is stripped by the thread and reported
      await round({ ...to, src: '127.0.0.2' });
      expect(r.got.at(-1)!.from).toBe('127.0.0.2');
      const n = r.got.length;
      b.send([Buffer.from('fallback')], { ...to, src: '192.0.2.77' });
      await until(() => r.got.length === n + 1, 'fallback');
      expect(r.got[n]!.from).toBe('127.0.0.1');
      expect(b.sendDropped).toBe(0);
      // a refused source inside a burst the sender took (the pool's call fails; the burst is
      // finished on this thread without it)
      const burst = Array.from({ length: 16 }, (_, i) => Buffer.from(`r-${i}`));
      b.send(burst, { ...to, src: '192.0.2.78' });
      await until(() => r.got.length === n + 17, 'the refused-source burst');
      expect(r.got.slice(n + 1).map((g) => `${g.m}@${g.from}`)).toEqual(
        burst.map((x) => `${x}@127.0.0.1`),
      );
      expect(b.sendDropped).toBe(0);
      const tx = (
        b as unknown as { tx: { thread: { exited: Promise<void> } | null; pooled: boolean } }
      ).tx;
      expect(tx.pooled).toBe(pool);
      if (pool) {
        // bursts still in the ring when the bind closes go out before the fd is closed
        const last = Array.from({ length: 300 }, (_, i) => Buffer.from(`c-${i}`));
        const m = r.got.length;
        b.send(last, to);
        await b.close();
        await until(() => r.got.length === m + 300, 'the bursts queued at close');
        expect(r.got.slice(m).map((g) => g.m.toString())).toEqual(last.map(String));
        return;
      }
      let exited = false;
      void tx.thread!.exited.then(() => (exited = true));
      await b.close();
      expect(exited).toBe(true); // the thread was gone before the fd was closed
    },
    240_000, // its many waits are bounded by `until`, not by the unit tests' 20 s
  );

  it('AWG_UDP_SEND_THREAD=auto: the pool sender takes bursts only while the gauge says the thread is starved, in order across the switches', async () => {
    let starved = false;
    const b = new NativeUdpBind(undefined, { sendThread: true, gauge: { check: () => starved } });
    await b.open(0);
    const r = await roomy();
    const to = { address: '127.0.0.1', port: r.port };
    const tx = (
      b as unknown as {
        tx: { pooled: boolean; pool: { head: number; tail: number; busy: boolean } | null };
      }
    ).tx;
    let seq = 0;
    const round = async () => {
      const want = r.got.length + 64;
      b.send(
        Array.from({ length: 64 }, () => Buffer.from(`a-${seq++}`)),
        to,
      );
      await until(() => r.got.length === want, `datagram ${want}`);
    };
    for (let i = 0; i < 40 && !tx.pooled; i++) await round();
    await reachRate(b);
    expect(tx.pooled).toBe(true); // under load the pool sender is set up…
    for (let i = 0; i < 5; i++) await round();
    expect(b.sendPoolActive).toBe(false);
    expect(tx.pool!.head).toBe(0); // …but no burst went to it while the thread was not starved
    starved = true;
    for (let i = 0; i < 5; i++) await round();
    expect(b.sendPoolActive).toBe(true);
    const handed = tx.pool!.head;
    expect(handed).toBeGreaterThanOrEqual(5);
    // calm again while bursts are still queued: they leave first, then the sends stay here
    b.send(
      Array.from({ length: 600 }, () => Buffer.from(`a-${seq++}`)),
      to,
    );
    starved = false;
    b.send(
      Array.from({ length: 64 }, () => Buffer.from(`a-${seq++}`)),
      to,
    );
    await until(() => r.got.length === seq, 'the bursts across the switch');
    // the peer can read the last datagram before the pool's completion reaches this thread;
    // until it does the pool counts as busy and the next burst still queues behind it (in order)
    await until(
      () => !tx.pool!.busy && tx.pool!.head === tx.pool!.tail,
      'the pool sender idle again',
    );
    const queued = tx.pool!.head;
    for (let i = 0; i < 5; i++) await round();
    expect(b.sendPoolActive).toBe(false);
    expect(tx.pool!.head).toBe(queued);
    expect(r.got.map((g) => g.m.toString())).toEqual(
      Array.from({ length: seq }, (_, i) => `a-${i}`),
    );
    expect(b.sendDropped).toBe(0);
    await b.close();
  });

  it('reports EADDRINUSE and closes idempotently', async () => {
    const { b, port } = await bind();
    const other = new NativeUdpBind();
    await expect(other.open(port)).rejects.toThrow(/EADDRINUSE/);
    await b.close();
    await b.close();
    b.send([Buffer.from('x')], { address: '127.0.0.1', port: 9 }); // closed: dropped silently
  });
});
