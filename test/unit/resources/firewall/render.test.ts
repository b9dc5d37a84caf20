import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import { bypassMarkOf } from '../../../../src/resources/firewall/policy.js';
import { parseTableListing, parseTableNames } from '../../../../src/resources/firewall/parse.js';
import {
  firewallSpec,
  renderTable,
  renderTransaction,
  sortAddrs,
} from '../../../../src/resources/firewall/render.js';
import { normaliseRuleset } from '../../../../src/resources/firewall/normalise.js';

const dir = new URL('./golden/', import.meta.url);
const fixture = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/firewall/${f}`, import.meta.url), 'utf8');
const policy = (name: string) =>
  JSON.parse(readFileSync(new URL(`${name}.policy.json`, dir), 'utf8')) as NftPolicy;
const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.policy.json'))
  .map((f) => f.slice(0, -'.policy.json'.length));

describe('renderTable golden files (UPDATE_GOLDEN=1 rewrites them)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThanOrEqual(4));
  for (const name of cases) {
    it(name, () => {
      const out = renderTable(policy(name));
      const file = new URL(`${name}.nft`, dir);
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, out);
      expect(out).toBe(readFileSync(file, 'utf8'));
    });
  }
});

describe('read-back equality', () => {
  it('the captured nft listing of a loaded policy normalises to the rendered spec', () => {
    const spec = firewallSpec(policy('per-app-full'));
    const listed = parseTableListing(fixture('list-table-full.txt'));
    expect(listed.marked).toBe(true);
    expect(listed.ruleset).toBe(spec.ruleset);
    expect(parseTableListing(fixture('list-table-full-handles.txt')).ruleset).toBe(spec.ruleset);
  });

  it('proxy tunnels: the captured listing (per-app redirects, DNS, leak guard) normalises to the rendered spec', () => {
    const listed = parseTableListing(fixture('list-table-proxy.txt'));
    expect(listed.ruleset).toBe(firewallSpec(policy('proxy-tunnels')).ruleset);
  });

  it('a changed counter is not drift; a changed rule is', () => {
    const spec = firewallSpec(policy('per-app-full'));
    const text = fixture('list-table-full.txt');
    expect(
      parseTableListing(
        text.replace(
          'counter packets 0 bytes 0 drop comment "kill-switch"',
          'counter packets 12 bytes 3400 drop comment "kill-switch"',
        ),
      ).ruleset,
    ).toBe(spec.ruleset);
    // a recreated cgroup: nft prints the stale inode instead of the path
    expect(
      parseTableListing(text.replace('level 1 "unified/awgcap"', 'level 1 177')).ruleset,
    ).not.toBe(spec.ruleset);
  });

  it('a table without the marker comment is not ours', () => {
    expect(parseTableListing('table inet awg {\n\tchain x {\n\t}\n}\n').marked).toBe(false);
    expect(parseTableListing('table inet awg {\n\tcomment "managed-by=other"\n}\n').marked).toBe(
      false,
    );
  });

  it('joins wrapped anonymous sets', () => {
    expect(
      normaliseRuleset(
        '\t\tip daddr { 10.0.0.0/8, 169.254.0.0/16,\n\t\t\t     172.16.0.0/12 } accept\n',
      ),
    ).toBe('ip daddr { 10.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12 } accept\n');
  });

  it("drops named sets' elements (compared by the digest in the comment, or filled at run time)", () => {
    expect(
      normaliseRuleset(
        '\tset d4_x {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.0/8, 169.254.0.0/16,\n\t\t\t     172.16.0.0/12 }\n\t}\n',
      ),
    ).toBe('set d4_x {\ntype ipv4_addr\nflags interval\n}\n');
  });

  it('parses nft list tables', () => {
    expect(parseTableNames('table inet awg\ntable ip nat\ntable inet firewalld\n')).toEqual([
      ['inet', 'awg'],
      ['ip', 'nat'],
      ['inet', 'firewalld'],
    ]);
  });
});

describe('renderer contracts', () => {
  const base = policy('empty');
  it('transaction adds, deletes, then defines the table', () => {
    const t = renderTransaction(firewallSpec(base));
    expect(t.split('\n').slice(0, 3)).toEqual([
      'add table inet awg',
      'delete table inet awg',
      'table inet awg {',
    ]);
  });
  it('kill switch ends in a drop; off has none', () => {
    expect(renderTable(policy('killswitch-idle'))).toMatch(
      /counter drop comment "kill-switch"\n\t}\n}\n$/,
    );
    expect(renderTable(base)).not.toContain('kill-switch');
  });
  it('rejects marks outside the mask, zero, or equal to the bypass mark', () => {
    const app = (mark: number) => ({
      ...base,
      apps: [
        {
          name: 'x',
          cgroup: { path: 'awg/x', level: 2 },
          action: { type: 'mark' as const, mark, ipv6: 'tunnel' as const },
        },
      ],
    });
    expect(() => renderTable(app(0x10000000))).toThrow(/inside the claimed mask/);
    expect(() => renderTable(app(0))).toThrow();
    expect(() => renderTable(app(bypassMarkOf(base.fwmarkMask)))).toThrow();
    expect(() => renderTable(app(0x01000000))).not.toThrow();
  });
  it('refuses strings that could break out of a quoted nft word', () => {
    expect(() =>
      renderTable({
        ...base,
        apps: [
          { name: 'x" accept', cgroup: { path: 'awg/x', level: 2 }, action: { type: 'direct' } },
        ],
      }),
    ).toThrow(/cannot be used/);
    expect(() =>
      renderTable({
        ...base,
        apps: [{ name: 'x', cgroup: { path: 'awg/x"', level: 2 }, action: { type: 'direct' } }],
      }),
    ).toThrow(/cannot be used/);
  });
  it('sorts addresses the way nft prints anonymous sets', () => {
    expect(sortAddrs(['10.64.0.2', '10.64.0.1', '9.0.0.0/8', '10.64.0.1'])).toEqual([
      '9.0.0.0/8',
      '10.64.0.1',
      '10.64.0.2',
    ]);
    expect(sortAddrs(['ff00::/8', 'fc00::/7', 'fe80::/10'])).toEqual([
      'fc00::/7',
      'fe80::/10',
      'ff00::/8',
    ]);
  });
});
