/**
 * The learner: which rule learns which addresses from a response (a listed name anywhere on
 * the CNAME chain counts), per-rule entries with expiry, refresh on use, and expiry that
 * holds addresses with open connections.
 */
import { describe, expect, it } from 'vitest';
import { type LearnRule, Learner } from '../../../src/util/dns-learner.js';
import { response } from './dns-build.js';

/** a matcher of `domains`: the names themselves and their subdomains */
const listing =
  (...domains: string[]) =>
  (n: string) =>
    domains.some((d) => n === d || n.endsWith(`.${d}`));

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const cdnAnswer = response('www.listed.test', 1, [
  { owner: 'www.listed.test', type: 'CNAME', ttl: 300, data: 'edge.cdn.test' },
  { owner: 'edge.cdn.test', type: 'A', ttl: 60, data: '192.0.2.1' },
  { owner: 'edge.cdn.test', type: 'AAAA', ttl: 120, data: '2001:db8::1' },
]);
const aliasAnswer = response('alias.other.test', 1, [
  { owner: 'alias.other.test', type: 'CNAME', ttl: 30, data: 'www.listed.test' },
  { owner: 'www.listed.test', type: 'A', ttl: 600, data: '192.0.2.2' },
]);
const plainAnswer = response('plain.test', 1, [
  { owner: 'plain.test', type: 'A', ttl: 60, data: '198.51.100.1' },
]);

describe('Learner.learn', () => {
  it('a listed question behind an unlisted CNAME target learns the target’s addresses', () => {
    const c = clock();
    const l = new Learner({ now: c.now });
    const r = l.learn(cdnAnswer, [{ rule: 'tun', listed: listing('listed.test') }]);
    expect(r).toEqual({
      installs: [
        { rule: 'tun', addr: '192.0.2.1', family: 4, ttlMs: 60_000, name: 'www.listed.test' },
        { rule: 'tun', addr: '2001:db8::1', family: 6, ttlMs: 120_000, name: 'www.listed.test' },
      ],
      dropped: 0,
    });
    expect(l.size).toBe(2);
  });

  it('an unlisted question whose CNAME target is listed learns too (TTL least on the chain)', () => {
    const l = new Learner({ now: clock().now });
    const r = l.learn(aliasAnswer, [{ rule: 'tun', listed: listing('listed.test') }]);
    expect(r.installs).toEqual([
      { rule: 'tun', addr: '192.0.2.2', family: 4, ttlMs: 30_000, name: 'www.listed.test' },
    ]);
  });

  it('learns nothing for unlisted names, refused messages or no rules', () => {
    const l = new Learner({ now: clock().now });
    const rules = [{ rule: 'tun', listed: listing('listed.test') }];
    expect(l.learn(plainAnswer, rules)).toEqual({ installs: [], dropped: 0 });
    expect(l.learn(cdnAnswer, [])).toEqual({ installs: [], dropped: 0 });
    expect(l.learn(cdnAnswer.subarray(0, 40), rules)).toEqual({
      installs: [],
      refused: 'answer count larger than the message',
      dropped: 0,
    });
    expect(l.size).toBe(0);
  });

  it('keeps entries per rule: two rules learn the same address independently', () => {
    const c = clock();
    const l = new Learner({ now: c.now });
    const a: LearnRule = { rule: 'app-a', listed: listing('listed.test') };
    const b: LearnRule = { rule: 'app-b', listed: listing('cdn.test') };
    // app-a and app-b resolve the same name at different times, each under its own rule
    l.learn(cdnAnswer, [a]);
    c.advance(50_000);
    l.learn(cdnAnswer, [b]);
    expect(l.lookup('192.0.2.1').map((e) => [e.rule, e.expiresAt - 1_000_000])).toEqual([
      ['app-a', 60_000],
      ['app-b', 110_000],
    ]);
    c.advance(20_000); // 70 s: app-a's v4 entry is over, app-b's is not
    const ex = l.expire();
    expect(ex.remove.map((e) => [e.rule, e.addr])).toEqual([['app-a', '192.0.2.1']]);
    expect(l.lookup('192.0.2.1').map((e) => e.rule)).toEqual(['app-b']);
    expect(l.size).toBe(3);
  });

  it('never shortens an entry: a later answer with less TTL left keeps the expiry', () => {
    const c = clock();
    const l = new Learner({ now: c.now });
    const rules = [{ rule: 'tun', listed: listing('listed.test') }];
    l.learn(
      response('x.listed.test', 1, [
        { owner: 'x.listed.test', type: 'A', ttl: 300, data: '192.0.2.9' },
      ]),
      rules,
    );
    c.advance(10_000);
    const r = l.learn(
      response('x.listed.test', 1, [
        { owner: 'x.listed.test', type: 'A', ttl: 20, data: '192.0.2.9' },
      ]),
      rules,
    );
    expect(r.installs[0]?.ttlMs).toBe(290_000);
  });

  it('drops new entries beyond maxEntries and says how many', () => {
    const l = new Learner({ now: clock().now, maxEntries: 1 });
    const r = l.learn(cdnAnswer, [{ rule: 'tun', listed: listing('listed.test') }]);
    expect(r.installs.map((i) => i.addr)).toEqual(['192.0.2.1']);
    expect(r.dropped).toBe(1);
    expect(l.size).toBe(1);
  });
});

describe('Learner.refresh and expire', () => {
  it('refresh moves expiry to now + TTL and returns the re-adds', () => {
    const c = clock();
    const l = new Learner({ now: c.now });
    l.learn(cdnAnswer, [{ rule: 'tun', listed: listing('listed.test') }]);
    c.advance(50_000);
    expect(l.refresh('192.0.2.1')).toEqual([
      { rule: 'tun', addr: '192.0.2.1', family: 4, ttlMs: 60_000, name: 'www.listed.test' },
    ]);
    expect(l.refresh('192.0.2.1', 'other')).toEqual([]);
    expect(l.refresh('203.0.113.99')).toEqual([]);
    c.advance(59_000);
    expect(l.expire().remove).toEqual([]);
    c.advance(1_000);
    expect(l.expire().remove.map((e) => e.addr)).toEqual(['192.0.2.1']);
  });

  it('holds an expired address while it carries connections, removes it when they end', () => {
    const c = clock();
    const open = new Set<string>(['tun 192.0.2.1']);
    const l = new Learner({ now: c.now, inUse: (addr, rule) => open.has(`${rule} ${addr}`) });
    l.learn(cdnAnswer, [{ rule: 'tun', listed: listing('listed.test') }]);
    c.advance(120_000);
    const first = l.expire();
    expect(first.remove.map((e) => e.addr)).toEqual(['2001:db8::1']);
    expect(first.held.map((e) => e.addr)).toEqual(['192.0.2.1']);
    expect(l.lookup('192.0.2.1')).toHaveLength(1);
    c.advance(600_000);
    expect(l.expire().held.map((e) => e.addr)).toEqual(['192.0.2.1']);
    open.clear();
    const last = l.expire();
    expect(last).toEqual({
      remove: [
        {
          rule: 'tun',
          addr: '192.0.2.1',
          family: 4,
          name: 'www.listed.test',
          ttlMs: 60_000,
          expiresAt: 1_060_000,
        },
      ],
      held: [],
    });
    expect(l.size).toBe(0);
    expect(l.lookup('192.0.2.1')).toEqual([]);
  });

  it('an in-use check is per rule: the other rule’s entry for the address expires', () => {
    const c = clock();
    const l = new Learner({ now: c.now, inUse: (_addr, rule) => rule === 'a' });
    l.learn(plainAnswer, [
      { rule: 'a', listed: () => true },
      { rule: 'b', listed: listing('plain.test') },
    ]);
    c.advance(60_000);
    const ex = l.expire();
    expect(ex.remove.map((e) => e.rule)).toEqual(['b']);
    expect(ex.held.map((e) => e.rule)).toEqual(['a']);
  });

  it('entries() returns copies the caller cannot change the book through', () => {
    const l = new Learner({ now: clock().now });
    l.learn(plainAnswer, [{ rule: 'r', listed: () => true }]);
    const [e] = l.entries();
    e!.expiresAt = 0;
    expect(l.expire().remove).toEqual([]);
  });
});
