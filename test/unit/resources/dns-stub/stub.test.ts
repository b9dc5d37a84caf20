/**
 * The DNS stub's logic on loopback: a fake upstream resolver, a fake set writer whose acks
 * the test releases, and injected original destinations. The kernel side (conntrack,
 * nf_tables, redirects) is covered by test/netns/domain-rules.test.ts.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { domainSetOf } from '../../../../src/config/lists.js';
import {
  DnsStub,
  upstreamMark,
  type DnsStubConfig,
  type DnsStubDeps,
  type QueryOrigin,
} from '../../../../src/resources/dns-stub/stub.js';
import { buildQuery, TYPE_A, TYPE_AAAA } from '../../../../src/util/dns-wire.js';
import { response, type Rec } from '../../util/dns-build.js';

const ZONE: Record<string, Rec[]> = {
  'www.listed.test/1': [
    { owner: 'www.listed.test', type: 'A', ttl: 300, data: '192.0.2.1' },
    { owner: 'www.listed.test', type: 'A', ttl: 60, data: '192.0.2.2' },
  ],
  'www.listed.test/28': [{ owner: 'www.listed.test', type: 'AAAA', ttl: 120, data: '2001:db8::1' }],
  'alias.other.test/1': [
    { owner: 'alias.other.test', type: 'CNAME', ttl: 30, data: 'www.listed.test' },
    { owner: 'www.listed.test', type: 'A', ttl: 600, data: '192.0.2.3' },
  ],
  'plain.test/1': [{ owner: 'plain.test', type: 'A', ttl: 60, data: '198.51.100.1' }],
};

/** the answer to `q` from ZONE, or NXDOMAIN-less empty NOERROR */
function answerTo(q: Buffer): Buffer {
  // the question: name labels from offset 12, then type
  const labels: string[] = [];
  let o = 12;
  while (q[o]! > 0) {
    labels.push(q.subarray(o + 1, o + 1 + q[o]!).toString('latin1'));
    o += 1 + q[o]!;
  }
  const name = labels.join('.');
  const type = q.readUInt16BE(o + 1);
  const r = response(name, type, ZONE[`${name.toLowerCase()}/${type}`] ?? []);
  r.writeUInt16BE(q.readUInt16BE(0), 0);
  return r;
}

interface Upstream {
  port: number;
  queries: number;
  close(): void;
}

async function fakeUpstream(): Promise<Upstream> {
  const udp = createSocket('udp4');
  const tcp: Server = createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        u.queries++;
        const a = answerTo(Buffer.from(q));
        const h = Buffer.alloc(2);
        h.writeUInt16BE(a.length);
        c.write(Buffer.concat([h, a]));
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const port = (tcp.address() as { port: number }).port;
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', r));
  udp.on('message', (q, rinfo) => {
    u.queries++;
    udp.send(answerTo(q), rinfo.port, rinfo.address);
  });
  const u: Upstream = {
    port,
    queries: 0,
    close: () => {
      udp.close();
      tcp.close();
    },
  };
  return u;
}

interface Add {
  set: string;
  elements: { addr: string; timeoutMs?: number | undefined }[];
}

/** a set writer whose acks the test releases (`hold`), recording every call */
function fakeWriter() {
  const adds: Add[] = [];
  const deletes: { set: string; addrs: string[] }[] = [];
  let held: (() => void)[] = [];
  let holding = false;
  let onAdd: (() => void) | undefined;
  return {
    adds,
    deletes,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      const h = held;
      held = [];
      for (const f of h) f();
    },
    /** resolves once an add was called */
    nextAdd: () => new Promise<void>((r) => (onAdd = r)),
    writer: {
      add(set: string, elements: readonly Add['elements'][number][]) {
        adds.push({ set, elements: [...elements] });
        onAdd?.();
        return holding ? new Promise<void>((r) => held.push(r)) : Promise.resolve();
      },
      delete(set: string, addrs: readonly string[]) {
        deletes.push({ set, addrs: [...addrs] });
        return Promise.resolve();
      },
      close() {},
    },
  };
}

const stubs: DnsStub[] = [];
const closers: (() => void)[] = [];
afterEach(() => {
  for (const s of stubs.splice(0)) s.stop();
  for (const c of closers.splice(0)) c();
});

const rules = (): DnsStubConfig['rules'] => [
  {
    rule: 'tun',
    domains: domainSetOf(['listed.test']),
    sets: { v4: 'l4_tun', v6: 'l6_tun' },
  },
];

async function setup(over: Partial<DnsStubDeps> = {}, cfg: Partial<DnsStubConfig> = {}) {
  const up = await fakeUpstream();
  closers.push(() => up.close());
  const w = fakeWriter();
  let t = 1_000_000;
  const origin: QueryOrigin = { addr: '127.0.0.1', port: up.port, mark: 0 };
  const deps: DnsStubDeps = {
    udpOrigin: () => origin,
    tcpOrigin: () => origin,
    openWriter: () => w.writer,
    openDestinations: () => new Set(),
    marks: false,
    now: () => t,
    tickMs: 3_600_000,
    ...over,
  };
  const stub = new DnsStub(deps);
  stubs.push(stub);
  // a free port for both listeners (UDP and TCP on 127.0.0.1 and ::1)
  for (let i = 0; ; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    try {
      await stub.start({
        port,
        ...(cfg.tunnelResolvers ? { tunnelPort: port + 1 } : {}),
        table: 'awg',
        rules: rules(),
        fwmarkMask: 0x0f000000,
        bypassMark: 0x0f000000,
        ...cfg,
      });
      break;
    } catch (e) {
      if (i > 20) throw e;
    }
  }
  return { stub, up, w, advance: (ms: number) => (t += ms) };
}

/** one UDP query to the stub; resolves with the answer */
async function askUdp(port: number, name: string, type = TYPE_A, host = '127.0.0.1') {
  const s: DgramSocket = createSocket(host === '::1' ? 'udp6' : 'udp4');
  closers.push(() => s.close());
  const answer = new Promise<Buffer>((r) => s.once('message', (m) => r(m)));
  s.send(buildQuery(0x1234, name, type as 1 | 28), port, host);
  return { answer, socket: s };
}

function addrsOf(answer: Buffer): number {
  return answer.readUInt16BE(6);
}

describe('DnsStub over UDP', () => {
  it('installs a listed answer’s addresses and answers only after the kernel’s ack', async () => {
    const { stub, w } = await setup();
    w.hold();
    const added = w.nextAdd();
    let got: Buffer | undefined;
    const q = await askUdp(stub.port!, 'www.listed.test');
    void q.answer.then((a) => (got = a));
    await added;
    // the add is pending: a later query (unlisted: no add) makes its whole round trip, and the
    // first client still has nothing (an answer sent before the ack would be in its socket)
    const later = await (await askUdp(stub.port!, 'plain.test')).answer;
    expect(addrsOf(later)).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(got).toBeUndefined();
    w.release();
    const a = await q.answer;
    expect(addrsOf(a)).toBe(2);
    expect(a.readUInt16BE(0)).toBe(0x1234);
    expect(w.adds).toEqual([
      {
        set: 'l4_tun',
        elements: [
          { addr: '192.0.2.1', timeoutMs: 300_000 },
          { addr: '192.0.2.2', timeoutMs: 60_000 },
        ],
      },
    ]);
    expect(stub.stats()).toMatchObject({
      queries: 2,
      answers: 2,
      learnedAnswers: 1,
      installs: 2,
      elements: 2,
      names: 1,
    });
  });

  it('AAAA goes to the v6 set; over ::1 too', async () => {
    const { stub, w } = await setup();
    const a = await (await askUdp(stub.port!, 'www.listed.test', TYPE_AAAA, '::1')).answer;
    expect(addrsOf(a)).toBe(1);
    expect(w.adds).toEqual([
      { set: 'l6_tun', elements: [{ addr: '2001:db8::1', timeoutMs: 120_000 }] },
    ]);
  });

  it('an unlisted alias of a listed name learns (CNAME chain); the CNAME TTL bounds it', async () => {
    const { stub, w } = await setup();
    await (
      await askUdp(stub.port!, 'alias.other.test')
    ).answer;
    expect(w.adds).toEqual([
      { set: 'l4_tun', elements: [{ addr: '192.0.2.3', timeoutMs: 30_000 }] },
    ]);
  });

  it('an unlisted name learns nothing and is answered unchanged', async () => {
    const { stub, w, up } = await setup();
    const a = await (await askUdp(stub.port!, 'plain.test')).answer;
    expect(a.equals(answerTo(buildQuery(0x1234, 'plain.test', TYPE_A)))).toBe(true);
    expect(w.adds).toEqual([]);
    expect(up.queries).toBe(1);
    expect(stub.stats().elements).toBe(0);
  });

  it('every rule whose domains fit learns: one set per rule', async () => {
    const { stub, w } = await setup(
      {},
      {
        rules: [
          ...rules(),
          {
            rule: 'other',
            domains: domainSetOf(['*.listed.test']),
            sets: { v4: 'l4_other' },
          },
        ],
      },
    );
    await (
      await askUdp(stub.port!, 'www.listed.test')
    ).answer;
    expect(w.adds.map((a) => a.set).sort()).toEqual(['l4_other', 'l4_tun']);
  });

  it('a query without an original destination, or to the stub itself, gets SERVFAIL', async () => {
    const { stub, up } = await setup({ udpOrigin: () => undefined });
    const a = await (await askUdp(stub.port!, 'www.listed.test')).answer;
    expect(a.readUInt16BE(2) & 0x000f).toBe(2);
    expect(up.queries).toBe(0);

    const self = await setup({
      udpOrigin: () => ({ addr: '127.0.0.1', port: self.stub.port!, mark: 0 }),
    });
    const b = await (await askUdp(self.stub.port!, 'www.listed.test')).answer;
    expect(b.readUInt16BE(2) & 0x000f).toBe(2);
    expect(self.up.queries).toBe(0);
    expect(self.stub.stats().servfails).toBe(1);
  });

  it('the per-app DNS port asks the resolver of the tunnel the query’s mark names', async () => {
    const up2 = await fakeUpstream();
    closers.push(() => up2.close());
    const { stub, up, w } = await setup(
      // the original destination is unreachable: only the tunnel's resolver can answer
      { udpOrigin: () => ({ addr: '192.0.2.53', port: 53, mark: 0x03000042 }) },
      { tunnelResolvers: [{ mark: 0x03000000, v4: '127.0.0.1', port: up2.port }] },
    );
    const a = await (await askUdp(stub.port! + 1, 'www.listed.test')).answer;
    expect(addrsOf(a)).toBe(2);
    expect(up2.queries).toBe(1);
    expect(up.queries).toBe(0);
    expect(w.adds.map((x) => x.set)).toEqual(['l4_tun']);
  });

  it('the per-app DNS port: a mark without a tunnel resolver gets SERVFAIL', async () => {
    const { stub, up } = await setup(
      { udpOrigin: () => ({ addr: '127.0.0.1', port: 53, mark: 0x05000000 }) },
      { tunnelResolvers: [{ mark: 0x03000000, v4: '127.0.0.1' }] },
    );
    const a = await (await askUdp(stub.port! + 1, 'www.listed.test')).answer;
    expect(a.readUInt16BE(2) & 0x000f).toBe(2);
    expect(up.queries).toBe(0);
  });

  it('an add that fails is answered SERVFAIL (fail closed: the app never connects outside its rule), counted', async () => {
    const { stub, w } = await setup();
    w.writer.add = () => Promise.reject(new Error('ENOENT'));
    const a = await (await askUdp(stub.port!, 'www.listed.test')).answer;
    expect(a.readUInt16BE(2) & 0x000f).toBe(2);
    expect(addrsOf(a)).toBe(0);
    expect(stub.stats()).toMatchObject({ installFailures: 2, learnedAnswers: 0, servfails: 1 });
  });

  it('an unlisted name is answered even while adds fail (nothing to install)', async () => {
    const { stub, w } = await setup();
    w.writer.add = () => Promise.reject(new Error('ENOENT'));
    const a = await (await askUdp(stub.port!, 'other.test')).answer;
    expect(a.readUInt16BE(2) & 0x000f).toBe(0);
  });
});

describe('DnsStub over TCP', () => {
  it('two queries on one connection, each learned before its answer', async () => {
    const { stub, w } = await setup();
    const c: Socket = connect(stub.port!, '127.0.0.1');
    closers.push(() => c.destroy());
    const frames: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const two = new Promise<void>((resolve) =>
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (frames.length === 2) resolve();
      }),
    );
    const fr = (m: Buffer) => Buffer.concat([Buffer.of(m.length >> 8, m.length & 0xff), m]);
    c.write(
      Buffer.concat([
        fr(buildQuery(1, 'www.listed.test', TYPE_A)),
        fr(buildQuery(2, 'www.listed.test', TYPE_AAAA)),
      ]),
    );
    await two;
    expect(frames.map((f) => f.readUInt16BE(0))).toEqual([1, 2]);
    expect(w.adds.map((a) => a.set)).toEqual(['l4_tun', 'l6_tun']);
  });
});

describe('DnsStub book', () => {
  it('resync re-adds every entry with its remaining time', async () => {
    const { stub, w, advance } = await setup();
    await (
      await askUdp(stub.port!, 'www.listed.test')
    ).answer;
    w.adds.length = 0;
    advance(10_000);
    await stub.resync();
    expect(w.adds).toEqual([
      {
        set: 'l4_tun',
        elements: [
          { addr: '192.0.2.1', timeoutMs: 290_000 },
          { addr: '192.0.2.2', timeoutMs: 50_000 },
        ],
      },
    ]);
  });

  it('expiry removes free entries and refreshes ones with open connections', async () => {
    const open = new Set<string>(['192.0.2.2']);
    const { stub, w, advance } = await setup({ openDestinations: () => open });
    await (
      await askUdp(stub.port!, 'www.listed.test')
    ).answer;
    w.adds.length = 0;
    advance(59_000);
    await stub.tick();
    // 192.0.2.2 expires within the lead time and carries a connection: re-added
    expect(w.adds).toEqual([
      { set: 'l4_tun', elements: [{ addr: '192.0.2.2', timeoutMs: 60_000 }] },
    ]);
    open.clear();
    advance(61_000);
    await stub.tick();
    expect(w.deletes).toEqual([{ set: 'l4_tun', addrs: ['192.0.2.2'] }]);
    expect(stub.stats().elements).toBe(1);
  });
});

describe('upstreamMark', () => {
  const m = { fwmarkMask: 0x0f000000, bypassMark: 0x0f000000 };
  it('the app’s tunnel mark; bypass when it has none', () => {
    expect(upstreamMark(0x03000000, m)).toBe(0x03000000);
    expect(upstreamMark(0x03000042, m)).toBe(0x03000000);
    expect(upstreamMark(0, m)).toBe(0x0f000000);
    expect(upstreamMark(0x0f000000, m)).toBe(0x0f000000);
  });
});
