import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  networkdManagesForeignRules,
  parseRuleJson,
} from '../../../../src/resources/rule/parse.js';
import { ruleArgs } from '../../../../src/resources/rule/render.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/rule/${f}`, import.meta.url), 'utf8');
const band = { protocol: 167, rulePriority: 5200, bandSize: 100 };

describe('parseRuleJson (captured ip -j -N rule show)', () => {
  it('owned rules in the band with our protocol', () => {
    const p = parseRuleJson(fx('v4-mixed.json'), 4, band);
    expect(p.owned).toEqual([
      {
        family: 4,
        priority: 5200,
        fwmark: 0x1000000,
        fwmask: 0xf000000,
        table: 52000,
        action: 'lookup',
        protocol: 167,
      },
      {
        family: 4,
        priority: 5201,
        fwmark: 0x1000000,
        fwmask: 0xf000000,
        action: 'unreachable',
        protocol: 167,
      },
      {
        family: 4,
        priority: 5202,
        table: 254,
        action: 'lookup',
        suppressPrefixLength: 0,
        protocol: 167,
      },
      {
        family: 4,
        priority: 5203,
        fwmark: 0x2000000,
        fwmask: 0xf000000,
        table: 52001,
        action: 'lookup',
        invert: true,
        protocol: 167,
      },
      {
        family: 4,
        priority: 5204,
        fwmark: 0x3000000,
        fwmask: 0xf000000,
        action: 'blackhole',
        protocol: 167,
      },
    ]);
    expect(p.conflicts.map((c) => c.priority)).toEqual([5205]);
    expect(p.competitors.map((c) => c.priority)).toEqual([100]);
  });

  it('names form parses the same', () => {
    expect(parseRuleJson(fx('v4-mixed-names.json'), 4, band)).toEqual(
      parseRuleJson(fx('v4-mixed.json'), 4, band),
    );
  });

  it('v6 rule with a source selector is a conflict even with our protocol', () => {
    const p = parseRuleJson(fx('v6-mixed.json'), 6, band);
    expect(p.owned).toEqual([
      {
        family: 6,
        priority: 5200,
        fwmark: 0x1000000,
        fwmask: 0xf000000,
        table: 52000,
        action: 'lookup',
        protocol: 167,
      },
    ]);
    expect(p.conflicts.map((c) => c.priority)).toEqual([5201]);
  });

  it('selectors and actions awg never sets are conflicts', () => {
    const p = parseRuleJson(fx('v4-unmanaged-selectors.json'), 4, band);
    expect(p.conflicts.map((c) => c.priority)).toEqual([5205, 5211, 5212, 5213, 5214, 5215, 5216]);
  });

  it('iif is a selector of ours (the first route of hosts without a default route: iif lo)', () => {
    const p = parseRuleJson(fx('v4-unmanaged-selectors.json'), 4, band);
    expect(p.owned.find((r) => r.priority === 5210)).toEqual({
      family: 4,
      priority: 5210,
      iif: 'v0',
      table: 52002,
      action: 'lookup',
      protocol: 167,
    });
    const lo = parseRuleJson(
      JSON.stringify([
        {
          priority: 5299,
          src: 'all',
          fwmark: '0',
          fwmask: '0xf000000',
          iif: 'lo',
          table: '52099',
          protocol: '167',
        },
      ]),
      4,
      band,
    );
    expect(lo.owned).toEqual([
      {
        family: 4,
        priority: 5299,
        fwmark: 0,
        fwmask: 0x0f000000,
        iif: 'lo',
        table: 52099,
        action: 'lookup',
        protocol: 167,
      },
    ]);
  });

  it('full mask is normalised away', () => {
    const p = parseRuleJson(
      JSON.stringify([
        {
          priority: 5200,
          src: 'all',
          fwmark: '0x5',
          fwmask: '0xffffffff',
          table: '52000',
          protocol: '167',
        },
      ]),
      4,
      band,
    );
    expect(p.owned[0]).toEqual({
      family: 4,
      priority: 5200,
      fwmark: 5,
      table: 52000,
      action: 'lookup',
      protocol: 167,
    });
  });
});

describe('ruleArgs', () => {
  it('renders every field', () => {
    expect(
      ruleArgs('add', {
        family: 4,
        priority: 5203,
        fwmark: 0x2000000,
        fwmask: 0xf000000,
        table: 52001,
        action: 'lookup',
        invert: true,
        protocol: 167,
      }).join(' '),
    ).toBe('rule add priority 5203 not fwmark 0x2000000/0xf000000 lookup 52001 protocol 167');
    expect(
      ruleArgs('del', {
        family: 4,
        priority: 5202,
        table: 254,
        action: 'lookup',
        suppressPrefixLength: 0,
        protocol: 167,
      }).join(' '),
    ).toBe('rule del priority 5202 lookup 254 suppress_prefixlength 0 protocol 167');
    expect(
      ruleArgs('add', {
        family: 6,
        priority: 5201,
        fwmark: 1,
        action: 'unreachable',
        protocol: 167,
      }).join(' '),
    ).toBe('rule add priority 5201 fwmark 0x1 unreachable protocol 167');
    expect(
      ruleArgs('add', {
        family: 4,
        priority: 5299,
        iif: 'lo',
        fwmark: 0,
        fwmask: 0xf000000,
        table: 52099,
        action: 'lookup',
        protocol: 167,
      }).join(' '),
    ).toBe('rule add priority 5299 iif lo fwmark 0x0/0xf000000 lookup 52099 protocol 167');
  });
});

describe('networkdManagesForeignRules', () => {
  it('defaults to yes (commented default file)', () => {
    expect(networkdManagesForeignRules([fx('networkd.conf.default')])).toBe(true);
    expect(networkdManagesForeignRules([])).toBe(true);
  });
  it('last setting wins, only in [Network]', () => {
    expect(
      networkdManagesForeignRules([
        fx('networkd.conf.default'),
        '[Network]\nManageForeignRoutingPolicyRules=no\n',
      ]),
    ).toBe(false);
    expect(
      networkdManagesForeignRules([
        '[Network]\nManageForeignRoutingPolicyRules=no\n',
        '[Network]\nManageForeignRoutingPolicyRules=yes',
      ]),
    ).toBe(true);
    expect(networkdManagesForeignRules(['[DHCPv4]\nManageForeignRoutingPolicyRules=no\n'])).toBe(
      true,
    );
  });
});
