import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NFT_MSG_NEWSETELEM,
  NftSetError,
  dumpSetElements,
  intervalElements,
  nftGenerationStamp,
  openSetWriter,
  type NftSetWriter,
  type SetElement,
} from '../../src/native/nftset.js';
import { dumpedIntervals, intervalCount } from '../../src/resources/firewall/set-elements.js';
import { nsExec, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft']);

const TABLE = 'awgset';
const RULESET = `table inet ${TABLE} {
  set l4 { type ipv4_addr; flags timeout; size 65536; }
  set l6 { type ipv6_addr; flags timeout; }
  set d4 { type ipv4_addr; flags interval; }
  set d6 { type ipv6_addr; flags interval; }
  set s4 { type ipv4_addr; flags interval; }
  set s6 { type ipv6_addr; flags interval; }
}
`;

interface JsonElem {
  elem?: { val: string; timeout?: number; expires?: number };
  prefix?: { addr: string; len: number };
  range?: [string, string];
}
type Entry = string | JsonElem;

describe.skipIf(skip)('nft set writer (netlink)', () => {
  const ns = useNetns('nfts');
  let w: NftSetWriter;

  async function listSet(set: string): Promise<Entry[]> {
    const r = await nsExec(ns.name, 'nft', ['-j', 'list', 'set', 'inet', TABLE, set]);
    const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: Entry[] } }[] };
    return doc.nftables.find((x) => x.set)?.set?.elem ?? [];
  }
  const addrOf = (e: Entry): string =>
    typeof e === 'string'
      ? e
      : e.prefix
        ? `${e.prefix.addr}/${e.prefix.len}`
        : e.range
          ? `${e.range[0]}-${e.range[1]}`
          : (e.elem?.val ?? JSON.stringify(e));
  const byAddr = async (set: string): Promise<Map<string, JsonElem['elem']>> =>
    new Map(
      (await listSet(set)).map((e) => [addrOf(e), typeof e === 'string' ? undefined : e.elem]),
    );

  beforeAll(async () => {
    await nsExec(ns.name, 'nft', ['-f', '-'], { input: RULESET });
    w = openSetWriter({ family: 'inet', table: TABLE, netns: ns.name });
  });
  afterAll(() => w?.close());

  it('adds v4 and v6 elements with timeouts, read back by nft', async () => {
    await w.add('l4', [
      { addr: '203.0.113.7', timeoutMs: 30_000 },
      { addr: '203.0.113.8', timeoutMs: 60_000 },
    ]);
    await w.add('l6', [{ addr: '2001:db8::7', timeoutMs: 45_000 }]);
    const v4 = await byAddr('l4');
    expect([...v4.keys()].sort()).toEqual(['203.0.113.7', '203.0.113.8']);
    expect(v4.get('203.0.113.7')?.timeout).toBe(30);
    expect(v4.get('203.0.113.8')?.timeout).toBe(60);
    expect(v4.get('203.0.113.7')?.expires).toBeGreaterThan(25);
    const v6 = await byAddr('l6');
    expect([...v6.keys()]).toEqual(['2001:db8::7']);
    expect(v6.get('2001:db8::7')?.timeout).toBe(45);
  });

  it('re-adding an element with a new timeout refreshes its expiry', async () => {
    await w.add('l4', [{ addr: '198.51.100.1', timeoutMs: 2_000 }]);
    await new Promise((r) => setTimeout(r, 1100));
    const before = (await byAddr('l4')).get('198.51.100.1');
    expect(before?.expires).toBeLessThanOrEqual(1);
    await w.add('l4', [{ addr: '198.51.100.1', timeoutMs: 120_000 }]);
    const after = (await byAddr('l4')).get('198.51.100.1');
    expect(after?.timeout).toBe(120);
    expect(after?.expires).toBeGreaterThan(100);
    // the same timeout again: expiry restarts too
    // (nft prints whole seconds left, rounded down)
    await w.add('l4', [{ addr: '198.51.100.2', timeoutMs: 3_000 }]);
    await new Promise((r) => setTimeout(r, 1600));
    expect((await byAddr('l4')).get('198.51.100.2')?.expires).toBeLessThanOrEqual(1);
    await w.add('l4', [{ addr: '198.51.100.2', timeoutMs: 3_000 }]);
    expect((await byAddr('l4')).get('198.51.100.2')?.expires).toBe(2);
  });

  it('an element expires after its timeout', async () => {
    await w.add('l4', [{ addr: '198.51.100.9', timeoutMs: 500 }]);
    expect((await byAddr('l4')).has('198.51.100.9')).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await byAddr('l4')).has('198.51.100.9')).toBe(false);
  });

  it('deletes elements; a missing one fails unless ignoreMissing', async () => {
    await w.add('l4', [{ addr: '192.0.2.10', timeoutMs: 60_000 }]);
    await w.delete('l4', ['192.0.2.10']);
    expect((await byAddr('l4')).has('192.0.2.10')).toBe(false);
    const e = await w.delete('l4', ['192.0.2.10']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NftSetError);
    expect((e as NftSetError).errno).toBe(2);
    expect((e as NftSetError).kind).toBe('driver');
    await w.delete('l4', ['192.0.2.10'], { ignoreMissing: true });
  });

  it('a missing set, a wrong family and a timeout on a set without one fail with errno', async () => {
    const missing = await w
      .add('nope', [{ addr: '192.0.2.1' }])
      .catch((x: unknown) => x as NftSetError);
    expect(missing).toBeInstanceOf(NftSetError);
    expect((missing as NftSetError).errno).toBe(2);
    expect((missing as NftSetError).message).toMatch(/nope.*ENOENT/);
    const v6in4 = await w.add('l4', [{ addr: '2001:db8::1' }]).catch((x: unknown) => x);
    expect(v6in4).toBeInstanceOf(NftSetError);
    const noTimeout = await w
      .add('d4', [{ addr: '192.0.2.1', timeoutMs: 1000 }])
      .catch((x: unknown) => x);
    expect(noTimeout).toBeInstanceOf(NftSetError);
    // a failed batch applies nothing of itself
    const partial = await w
      .add('l4', [{ addr: '192.0.2.77', timeoutMs: 60_000 }, { addr: '2001:db8::2' }])
      .catch((x: unknown) => x);
    expect(partial).toBeInstanceOf(NftSetError);
    expect((await byAddr('l4')).has('192.0.2.77')).toBe(false);
  });

  it('adds CIDRs to interval sets', async () => {
    await w.addCidrs('d4', ['10.1.0.0/16', '192.0.2.5/32', '255.255.255.0/24']);
    await w.addCidrs('d6', ['2001:db8:1::/48', 'ffff::/16']);
    expect([...(await byAddr('d4')).keys()].sort()).toEqual([
      '10.1.0.0/16',
      '192.0.2.5',
      '255.255.255.0/24',
    ]);
    expect([...(await byAddr('d6')).keys()].sort()).toEqual(['2001:db8:1::/48', 'ffff::/16']);
    const get = await nsExec(ns.name, 'nft', [
      'get',
      'element',
      'inet',
      TABLE,
      'd4',
      '{ 10.1.2.3 }',
    ]);
    expect(get.stdout).toContain('10.1.0.0/16');
  });

  it('10,000 elements in one batch', async () => {
    const els: SetElement[] = [];
    for (let i = 0; i < 10_000; i++)
      els.push({ addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, timeoutMs: 600_000 });
    const t0 = performance.now();
    await w.add('l4', els);
    const t1 = performance.now();
    // again: every element exists, each gets its timeout reset
    await w.add('l4', els);
    const t2 = performance.now();
    const v6: SetElement[] = els.map((_, i) => ({
      addr: `2001:db8:ff::${i.toString(16)}`,
      timeoutMs: 600_000,
    }));
    const t3 = performance.now();
    await w.add('l6', v6);
    const t4 = performance.now();
    console.log(
      `nftset: 10,000 v4 elements ${(t1 - t0).toFixed(1)} ms, re-add ${(t2 - t1).toFixed(1)} ms, ` +
        `10,000 v6 ${(t4 - t3).toFixed(1)} ms`,
    );
    // one element per call, as the DNS learner writes an answer
    const t5 = performance.now();
    for (let i = 0; i < 200; i++)
      await w.add('l4', [{ addr: `172.16.${i >> 8}.${i & 255}`, timeoutMs: 60_000 }]);
    const single = (performance.now() - t5) / 200;
    // past the first send buffer (1 MiB): the writer reopens its socket with a larger one
    const big: SetElement[] = Array.from({ length: 30_000 }, (_, i) => ({
      addr: `2001:db8:fe::${i.toString(16)}`,
      timeoutMs: 600_000,
    }));
    const t6 = performance.now();
    await w.add('l6', big);
    const t7 = performance.now();
    console.log(
      `nftset: one element per call ${(single * 1000).toFixed(0)} µs; ` +
        `30,000 v6 in one batch ${(t7 - t6).toFixed(1)} ms`,
    );
    const l6 = await listSet('l6');
    expect(l6.filter((e) => addrOf(e).startsWith('2001:db8:fe::')).length).toBe(30_000);
    const v4 = await listSet('l4');
    expect(v4.filter((e) => addrOf(e).startsWith('10.')).length).toBe(10_000);
    expect((await listSet('l6')).filter((e) => addrOf(e).startsWith('2001:db8:ff::')).length).toBe(
      10_000,
    );
  });

  it('loads static elements (hosts, prefixes, ranges, the end of the space) into interval sets; a dump reads them back', async () => {
    const v4 = [
      '0.0.0.0/8',
      '10.0.0.1',
      '10.0.0.2-10.0.0.9',
      '192.0.2.0/24',
      '203.0.113.250-255.255.255.255',
    ];
    const v6 = ['::1', '2001:db8::/32', '2001:db9::5-2001:db9::7', 'ffff::/16'];
    w.write(NFT_MSG_NEWSETELEM, 's4', intervalElements(v4));
    w.write(NFT_MSG_NEWSETELEM, 's6', intervalElements(v6));
    // nft sees the same intervals (it prints a range that is a prefix as the prefix)
    expect([...(await byAddr('s4')).keys()]).toEqual([
      '0.0.0.0/8',
      '10.0.0.1',
      '10.0.0.2-10.0.0.9',
      '192.0.2.0/24',
      '203.0.113.250-255.255.255.255',
    ]);
    expect([...(await byAddr('s6')).keys()]).toEqual([
      '::1',
      '2001:db8::/32',
      '2001:db9::5-2001:db9::7',
      'ffff::/16',
    ]);
    const d4 = dumpSetElements({ table: TABLE, set: 's4', netns: ns.name });
    const d6 = dumpSetElements({ table: TABLE, set: 's6', netns: ns.name });
    expect(intervalCount(d4)).toBe(5);
    expect(intervalCount(d6)).toBe(4);
    expect(dumpedIntervals(d4)).toEqual(v4);
    expect(dumpedIntervals(d6)).toEqual(v6);
    // a set nft filled reads the same (nft adds an end element at address 0: not an interval)
    await nsExec(ns.name, 'nft', ['add', 'element', 'inet', TABLE, 'd4', '{ 198.51.100.0/24 }']);
    const nftFilled = dumpSetElements({ table: TABLE, set: 'd4', netns: ns.name });
    expect(dumpedIntervals(nftFilled)).toContain('198.51.100.0/24');
    expect(intervalCount(nftFilled)).toBe(dumpedIntervals(nftFilled).length);
    expect(() => intervalElements(['10.0.0.9-10.0.0.2'])).toThrow(/not an address range/);
    expect(() => dumpSetElements({ table: TABLE, set: 'absent', netns: ns.name })).toThrow(
      NftSetError,
    );
  });

  it('65,000 intervals in one transaction, dumped back', async () => {
    const els: string[] = [];
    for (let i = 0; i < 65_000; i++)
      els.push(
        i % 3
          ? `100.${(i >> 8) & 255}.${i & 255}.0/25`
          : `100.${(i >> 8) & 255}.${i & 255}.200-100.${(i >> 8) & 255}.${i & 255}.210`,
      );
    await nsExec(ns.name, 'nft', [
      'add',
      'set',
      'inet',
      TABLE,
      'big',
      '{ type ipv4_addr; flags interval; }',
    ]);
    const t0 = performance.now();
    const raw = intervalElements(els);
    const t1 = performance.now();
    w.write(NFT_MSG_NEWSETELEM, 'big', raw);
    const t2 = performance.now();
    const d = dumpSetElements({ table: TABLE, set: 'big', netns: ns.name });
    const t3 = performance.now();
    console.log(
      `nftset: 65,000 intervals: encode ${(t1 - t0).toFixed(0)} ms, write ${(t2 - t1).toFixed(0)} ms, dump ${(t3 - t2).toFixed(0)} ms`,
    );
    expect(intervalCount(d)).toBe(65_000);
    expect(dumpedIntervals(d)).toEqual([...els].sort((a, b) => keyOf(a) - keyOf(b)));
  });

  it('the generation stamp changes with every committed change and only then', async () => {
    const a = nftGenerationStamp(ns.name);
    expect(a).toMatch(/^[0-9a-f-]{36}\/\d+\/\d+$/);
    expect(nftGenerationStamp(ns.name)).toBe(a);
    // the host's namespace is another one: another cookie
    expect(nftGenerationStamp()?.split('/')[1]).not.toBe(a!.split('/')[1]);
    await w.add('l4', [{ addr: '198.51.100.9', timeoutMs: 60_000 }]);
    const b = nftGenerationStamp(ns.name);
    expect(b).not.toBe(a);
    expect(b!.split('/').slice(0, 2)).toEqual(a!.split('/').slice(0, 2));
  });
});

/** an IPv4 element's first address as a number (for sorting) */
function keyOf(e: string): number {
  const [a, b, c, d] = e.split(/[-/]/)[0]!.split('.').map(Number);
  return ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0;
}
