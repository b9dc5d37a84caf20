import { describe, expect, it } from 'vitest';
import {
  DnsStubHost,
  firewallChanged,
  stubConfigOf,
  type StubPolicy,
} from '../../../src/daemon/dns-stub-host.js';
import type { AnyChange } from '../../../src/model/change.js';
import { DomainSet, domainSetOf } from '../../../src/config/lists.js';
import type { DnsStubDeps } from '../../../src/resources/dns-stub/stub.js';

const policy = (over: Partial<StubPolicy> = {}): StubPolicy => ({
  dnsStub: { port: 15296, tunnelPort: 15297 },
  fwmarkMask: 0x0f000000,
  bypassMark: 0x0f000000,
  apps: [
    { name: 'web', action: { type: 'direct' }, to: { learned4: 'l4_web', learned6: 'l6_web' } },
    { name: 'cidrs-only', action: { type: 'direct' }, to: { learned4: 'l4_cidrs-only' } },
    {
      name: 'browser',
      action: { type: 'mark', mark: 0x03000000 },
      dns: { v4: '10.64.0.1', v6: 'fd00::1' },
    },
    { name: '_exec-t3', action: { type: 'mark', mark: 0x03000000 }, dns: { v4: '10.64.0.1' } },
    { name: 'mail', action: { type: 'mark', mark: 0x01000000 }, dns: { v4: '10.9.0.1' } },
  ],
  ...over,
});
const destinations = new Map([
  ['web', { domains: domainSetOf(['example.org', '*.cdn.test']) }],
  ['cidrs-only', { domains: DomainSet.EMPTY }],
]);

describe('stubConfigOf', () => {
  it('rules with learned sets and domains; none without dnsStub', () => {
    const c = stubConfigOf(policy(), 'awg', destinations)!;
    expect(c).toMatchObject({
      port: 15296,
      tunnelPort: 15297,
      table: 'awg',
      fwmarkMask: 0x0f000000,
    });
    // one resolver pair per tunnel mark, from the rules with per-app DNS
    expect(c.tunnelResolvers).toEqual([
      { mark: 0x01000000, v4: '10.9.0.1', v6: undefined },
      { mark: 0x03000000, v4: '10.64.0.1', v6: 'fd00::1' },
    ]);
    expect(c.rules.map((r) => [r.rule, r.sets])).toEqual([['web', { v4: 'l4_web', v6: 'l6_web' }]]);
    const m = c.rules[0]!.domains;
    expect(m.matchDomain('www.example.org')).toBe(true);
    expect(m.matchDomain('a.cdn.test')).toBe(true);
    expect(m.matchDomain('cdn.test')).toBe(false);
    // the matcher is the destination set's own store (100k domains are not rebuilt per run)
    expect(stubConfigOf(policy(), 'awg', destinations)!.rules[0]!.domains).toBe(m);
    expect(stubConfigOf(policy({ dnsStub: undefined }), 'awg', destinations)).toBeUndefined();
    expect(stubConfigOf(undefined, 'awg', destinations)).toBeUndefined();
  });
});

describe('firewallChanged', () => {
  const ch = (kind: string, action: string) => ({ kind, action }) as unknown as AnyChange;
  it('a firewall change that is not a noop', () => {
    expect(firewallChanged([ch('firewall', 'update')])).toBe(true);
    expect(firewallChanged([ch('firewall', 'noop'), ch('route', 'create')])).toBe(false);
    expect(firewallChanged(undefined)).toBe(false);
  });
});

describe('DnsStubHost', () => {
  function fakeDeps() {
    const adds: string[] = [];
    let closed = 0;
    const deps: DnsStubDeps & { close(): void } = {
      udpOrigin: () => undefined,
      tcpOrigin: () => undefined,
      openWriter: () => ({
        add: (set) => {
          adds.push(set);
          return Promise.resolve();
        },
        delete: () => Promise.resolve(),
        close: () => {},
      }),
      openDestinations: () => new Set(),
      marks: false,
      now: () => 0,
      tickMs: 3_600_000,
      close: () => closed++,
    };
    return { deps, adds, closed: () => closed };
  }

  it('starts before a run, stops after a converged run without a stub, not after a failed one', async () => {
    const f = fakeDeps();
    const host = new DnsStubHost({ deps: () => f.deps });
    const port = 20000 + Math.floor(Math.random() * 30000);
    const cfg = stubConfigOf(
      policy({ dnsStub: { port, tunnelPort: port + 1 } }),
      'awg',
      destinations,
    );
    try {
      await host.before(cfg);
      expect(host.running).toBe(true);
      await host.after(cfg, true, true);
      expect(host.running).toBe(true);
      await host.after(undefined, false, false);
      expect(host.running).toBe(true);
      await host.after(undefined, true, true);
      expect(host.running).toBe(false);
      expect(f.closed()).toBe(1);
    } finally {
      host.close();
    }
  });

  it('a port it cannot listen on fails the run with a driver error', async () => {
    const f = fakeDeps();
    const a = new DnsStubHost({ deps: () => f.deps });
    const b = new DnsStubHost({ deps: () => fakeDeps().deps });
    const port = 20000 + Math.floor(Math.random() * 30000);
    const cfg = stubConfigOf(policy({ dnsStub: { port } }), 'awg', destinations);
    try {
      await a.before(cfg);
      await expect(b.before(cfg)).rejects.toThrow(/DNS stub cannot listen .* ports/);
    } finally {
      a.close();
      b.close();
    }
  });
});
