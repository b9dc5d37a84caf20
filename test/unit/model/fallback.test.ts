/**
 * Fallback semantics in the firewall (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks): what each rule's cgroup gets while its
 * tunnel is up or down, and that it agrees with effectiveRoute (what `awg processes` shows).
 */
import { describe, expect, it } from 'vitest';
import { Config, FALLBACKS } from '../../../src/config/schema.js';
import { DomainSet } from '../../../src/config/lists.js';
import { buildDesired, ruleAction } from '../../../src/model/desired.js';
import { linuxDesired } from '../../helpers/desired.js';
import { effectiveRoute } from '../../../src/model/match.js';
import { wgHealth, downSet } from '../../../src/daemon/tunnel-health.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const cfg = (rules: unknown[]) =>
  Config.parse({
    version: 1,
    tunnels: {
      a: {
        type: 'wireguard',
        privateKey: KEY,
        addresses: ['10.9.0.2/32'],
        peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
      },
      b: {
        type: 'wireguard',
        privateKey: KEY,
        addresses: ['10.9.1.2/32'],
        peers: [{ publicKey: KEY, endpoint: '192.0.2.2:51820', allowedIPs: ['0.0.0.0/0'] }],
      },
    },
    rules,
  });

describe('rule actions follow tunnel health', () => {
  const rules = FALLBACKS.map((f) => ({ name: f, match: { name: f }, target: 'a', fallback: f }));
  const c = cfg([
    ...rules,
    { name: 'tob', match: { name: 'x' }, target: 'b' },
    { name: 'blk', match: { name: 'y' }, target: 'block' },
    { name: 'dir', match: { name: 'z' }, target: 'direct', fallback: 'drop' },
  ]);
  const actions = (down: string[]) =>
    Object.fromEntries(
      buildDesired(c, { down: new Set(down) })
        .policy!.apps.filter((r) => !r.name.startsWith('_'))
        .map((r) => [r.name, r.action.type]),
    );

  it('tunnel up: every fallback but drop marks; target block and fallback drop always drop', () => {
    expect(actions([])).toEqual({
      'allow-direct': 'mark',
      block: 'mark',
      drop: 'drop',
      failover: 'mark',
      tob: 'mark',
      blk: 'drop',
      dir: 'drop',
    });
  });

  it('tunnel down: allow-direct goes direct, block and failover (what stays) drop; other tunnels unaffected', () => {
    expect(actions(['a'])).toEqual({
      'allow-direct': 'direct',
      block: 'drop',
      drop: 'drop',
      failover: 'drop',
      tob: 'mark',
      blk: 'drop',
      dir: 'drop',
    });
  });

  it('the firewall text changes only for the rules whose action changed', () => {
    const up = linuxDesired(c).resources.find((r) => r.kind === 'firewall')!.spec as {
      ruleset: string;
    };
    const dn = linuxDesired(c, { down: new Set(['a']) }).resources.find(
      (r) => r.kind === 'firewall',
    )!.spec as { ruleset: string };
    const changed = up.ruleset.split('\n').filter((l) => !dn.ruleset.includes(l));
    expect(changed.length).toBeGreaterThan(0);
    for (const l of changed) expect(l).toMatch(/app\/(allow-direct|block|failover)/);
  });

  it('agrees with effectiveRoute for a single-rule chain', () => {
    for (const f of FALLBACKS) {
      for (const down of [false, true]) {
        const a = ruleAction(
          { target: 'a', fallback: f },
          0x100,
          'allow',
          new Set(down ? ['a'] : []),
        );
        const r = effectiveRoute([{ index: 0, name: f, target: 'a', fallback: f }], () => !down);
        expect(a.type === 'mark' ? 'a' : a.type === 'direct' ? 'direct' : 'blocked').toBe(r);
      }
    }
  });
});

describe('wgHealth', () => {
  const peer = (
    o: Partial<{ hasEndpoint: boolean; lastHandshakeMs: number; handshakePendingMs: number }> = {},
  ) => ({ hasEndpoint: true, lastHandshakeMs: 0, handshakePendingMs: 0, ...o });
  it('connecting → up on a handshake; down once every initiating peer waited downAfter; engine gone is down', () => {
    expect(wgHealth(true, [peer()], 15_000)).toBe('connecting');
    expect(wgHealth(true, [peer({ handshakePendingMs: 14_999 })], 15_000)).toBe('connecting');
    expect(wgHealth(true, [peer({ handshakePendingMs: 15_000 })], 15_000)).toBe('down');
    expect(wgHealth(true, [peer({ lastHandshakeMs: 1 })], 15_000)).toBe('up');
    expect(wgHealth(true, [peer({ lastHandshakeMs: 1, handshakePendingMs: 20_000 })], 15_000)).toBe(
      'down',
    );
    expect(
      wgHealth(true, [peer({ handshakePendingMs: 20_000 }), peer({ lastHandshakeMs: 5 })], 15_000),
    ).toBe('up');
    expect(wgHealth(false, [peer({ lastHandshakeMs: 1 })], 15_000)).toBe('down');
  });
  it('a tunnel without initiating peers (a server) is up', () => {
    expect(wgHealth(true, [peer({ hasEndpoint: false, handshakePendingMs: 99_000 })], 15_000)).toBe(
      'up',
    );
  });
  it('downSet holds down and auth-failed only', () => {
    expect([
      ...downSet(
        new Map([
          ['a', 'down'],
          ['b', 'auth-failed'],
          ['c', 'connecting'],
          ['d', 'up'],
        ] as const),
      ),
    ]).toEqual(['a', 'b']);
  });
});

describe('rules that place no process (destination-only)', () => {
  const d4 = {
    domains: DomainSet.EMPTY,
    v4: [{ start: 0xcb007100, end: 0xcb0071ff }],
    v6: [],
    counts: { entries: 1, redundant: 0, cidrs4: 1, cidrs6: 0 },
  };
  const c = cfg([
    { name: 'fo', to: { cidrs: ['203.0.113.0/24'] }, target: 'a', fallback: 'failover' },
    { name: 'bl', to: { cidrs: ['203.0.113.0/24'] }, target: 'a', fallback: 'block' },
  ]);
  const build = (down: string[]) =>
    buildDesired(c, {
      down: new Set(down),
      destinations: new Map([
        ['fo', d4],
        ['bl', d4],
      ]),
    }).policy!;

  it("the rules' lines come first, then awg exec's", () => {
    const names = build([]).apps.map((r) => r.name);
    expect(names).toEqual(['fo', 'bl', '_exec-a', '_exec-b', '_exec-direct']);
  });

  it('tunnel down: failover leaves the rule out (the next rule decides), block drops', () => {
    const up = build([]).apps.filter((r) => !r.name.startsWith('_'));
    expect(up.map((r) => [r.name, r.action.type])).toEqual([
      ['fo', 'mark'],
      ['bl', 'mark'],
    ]);
    expect(up[0]!.to).toEqual({ static4: 'd4_fo' });
    const down = build(['a']).apps.filter((r) => !r.name.startsWith('_'));
    expect(down.map((r) => [r.name, r.action.type])).toEqual([['bl', 'drop']]);
  });
});
