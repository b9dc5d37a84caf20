import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import {
  stubNatRules,
  stubRouteRules,
} from '../../../../src/resources/firewall/render-dns-stub.js';
import { renderTable } from '../../../../src/resources/firewall/render.js';

const policy = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`./golden/${name}.policy.json`, import.meta.url), 'utf8'),
  ) as NftPolicy;

/** the rules of chain `name` in a rendered table */
function chainOf(table: string, name: string): string[] {
  const lines = table.split('\n').map((l) => l.trim());
  const at = lines.indexOf(`chain ${name} {`);
  const end = lines.indexOf('}', at);
  return lines.slice(at + 2, end);
}

describe('DNS stub rules', () => {
  const p: NftPolicy = { ...policy('per-app-full'), dnsStub: { port: 15296, tunnelPort: 15297 } };

  it('nothing without a stub', () => {
    const plain = policy('per-app-full');
    expect(stubRouteRules(plain)).toEqual([]);
    expect(stubNatRules(plain)).toEqual([]);
  });

  it('premarked right after bypass; per-app DNS rules, the redirects and the loop guard first in nat_out', () => {
    const t = renderTable(p);
    const route = chainOf(t, 'route_out');
    expect(route[1]).toContain('comment "bypass"');
    expect(route[2]).toBe(
      'meta mark & 0x0f000000 != 0x00000000 counter accept comment "premarked"',
    );
    const perApp = p.apps.filter((a) => a.dns && a.action.type === 'mark');
    expect(perApp.length).toBeGreaterThan(0);
    const nat = chainOf(t, 'nat_out');
    expect(nat.slice(0, perApp.length)).toEqual(
      perApp.map(
        (a) =>
          `socket cgroupv2 level ${a.cgroup!.level} "${a.cgroup!.path}" meta l4proto { tcp, udp } th dport 53 counter redirect to :15297 comment "dns-stub/${a.name}"`,
      ),
    );
    expect(nat.slice(perApp.length, perApp.length + 3)).toEqual([
      'meta mark & 0x0f000000 == 0x00000000 meta l4proto { tcp, udp } th dport 53 counter redirect to :15296 comment "dns-stub"',
      'ct mark & 0x0f000000 != 0x00000000 meta l4proto { tcp, udp } th dport 53 counter redirect to :15296 comment "dns-stub/marked"',
      'meta mark & 0x0f000000 != 0x00000000 meta mark & 0x0f000000 != 0x0f000000 ct mark & 0x0f000000 == 0x00000000 meta l4proto { tcp, udp } th dport 53 ct mark set meta mark counter comment "dns-stub/upstream"',
    ]);
  });

  it('a proxy tunnel’s rules keep their DNS path (the stub’s upstream reaches the engine by mark)', () => {
    const px: NftPolicy = {
      ...policy('proxy-tunnels'),
      dnsStub: { port: 15296, tunnelPort: 15297 },
    };
    expect(stubNatRules(px).filter((l) => l.includes(':15297'))).toEqual([]);
  });

  it('refuses a port out of range', () => {
    expect(() => stubNatRules({ ...p, dnsStub: { port: 70000 } })).toThrow(/port/);
  });
});
