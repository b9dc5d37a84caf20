import { describe, expect, it } from 'vitest';
import {
  anchorPath,
  bindPfLinks,
  pfPolicyFromFirewallPolicy,
  renderMainRuleset,
  renderPfAnchor,
  type PfPolicy,
} from '../../../src/platform/darwin/pf-render.js';
import { golden } from './helpers.js';

const base: PfPolicy = {
  killSwitch: true,
  allowLan: true,
  dnsLeakProtection: true,
  ipv6: 'tunnel',
  tunnels: [
    {
      link: 'awg-work',
      dns: ['10.64.0.1', 'fd00::1'],
      endpoints: [
        { address: '198.51.100.7', port: 51820, protocol: 'udp' },
        { address: '2001:db8::7', port: 51820, protocol: 'udp' },
      ],
    },
    {
      link: 'awg-home',
      dns: [],
      endpoints: [{ address: '203.0.113.9', port: 443, protocol: 'udp' }],
    },
    { dns: [], endpoints: [{ address: '192.0.2.10', port: 1080, protocol: 'tcp' }] },
  ],
};

describe('renderPfAnchor', () => {
  it('kill switch + DNS leak protection + LAN + IPv6 through tunnels (golden)', () => {
    golden('killswitch-full.pf', renderPfAnchor(base));
  });
  it("IPv6 blocked: v6 LAN, DHCPv6 and the tunnels' v6 dropped; the v6 endpoint and ND pass (golden)", () => {
    golden('killswitch-v6-block.pf', renderPfAnchor({ ...base, ipv6: 'block', allowLan: false }));
  });
  it('DNS leak protection only, no kill switch (golden)', () => {
    golden('dns-only.pf', renderPfAnchor({ ...base, killSwitch: false }));
  });
  it('IPv6 blocked without the kill switch: every v6 egress but lo0, the v6 endpoint, ND and link-local, before pass all (golden)', () => {
    const text = renderPfAnchor({ ...base, killSwitch: false, ipv6: 'block' });
    golden('v6-block-no-killswitch.pf', text);
    const t = text.trim().split('\n');
    expect(t.at(-1)).toBe('pass all flags any');
    expect(t.at(-2)).toBe('block drop out quick inet6 all');
    expect(t.indexOf('pass quick on lo0 all flags any')).toBeLessThan(t.length - 2);
    // ipv6 tunnel or allow: no v6 block
    for (const ipv6 of ['tunnel', 'allow'] as const)
      expect(renderPfAnchor({ ...base, killSwitch: false, ipv6 })).not.toContain('inet6 all');
  });
  it('every rule is quick except the pass-all of a disabled kill switch; block is last', () => {
    const t = renderPfAnchor(base)
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('#'));
    expect(t.at(-1)).toBe('block drop out quick all');
    expect(t.every((l) => / quick /.test(l))).toBe(true);
    const dnsBlock = t.indexOf(
      'block drop out quick proto { udp tcp } from any to any port { 53 853 }',
    );
    expect(dnsBlock).toBeGreaterThan(0);
    expect(t.findIndex((l) => l.includes('10.0.0.0/8'))).toBeGreaterThan(dnsBlock);
  });
});

describe('bindPfLinks', () => {
  it('defines macros for bound links and comments out rules of unbound ones', () => {
    const r = bindPfLinks(renderPfAnchor(base), { 'awg-work': 'utun5', 'awg-home': undefined });
    expect(r.unbound).toEqual(['awg_home']);
    const lines = r.text.split('\n');
    expect(lines[0]).toBe('awg_work = "utun5"');
    expect(lines).toContain('pass quick on $awg_work all flags any');
    expect(lines).toContain('# unbound awg_home: pass quick on $awg_home all flags any');
    expect(r.text.endsWith('block drop out quick all\n')).toBe(true);
  });
});

describe('anchors and main ruleset', () => {
  it('anchor paths stay under com.awg/', () => {
    expect(anchorPath('awg')).toBe('com.awg/awg');
    expect(anchorPath('com.awg/dns')).toBe('com.awg/dns');
    expect(() => anchorPath('../x')).toThrow();
  });
  it('main ruleset appends our hook after the system pf.conf', () => {
    expect(
      renderMainRuleset(
        'anchor "com.apple/*"\nload anchor "com.apple" from "/etc/pf.anchors/com.apple"',
      ),
    ).toBe(
      'anchor "com.apple/*"\nload anchor "com.apple" from "/etc/pf.anchors/com.apple"\n# awg\nanchor "com.awg/*"\n',
    );
  });
  it('adapts the model firewall policy', () => {
    const p = pfPolicyFromFirewallPolicy({
      fwmarkMask: 0xff0000,
      bypassMark: 0xff0000,
      killSwitch: 'on',
      dnsLeakProtection: true,
      apps: [],
      blockMarks: [],
      defaultRoute: { mark: 0x10000, ipv6: 'block' },
      tunnels: [
        {
          name: 'work',
          link: 'awg-work',
          mark: 0x10000,
          resolvers: ['10.64.0.1'],
          endpoints: [{ address: '198.51.100.7', port: 51820, protocol: 'udp' }],
        },
        {
          name: 'proxy',
          mark: 0x20000,
          resolvers: [],
          endpoints: [{ address: '192.0.2.10', port: 1080, protocol: 'tcp' }],
          redirectPort: 7000,
        },
      ],
    });
    expect(p).toEqual({
      killSwitch: true,
      allowLan: false,
      dnsLeakProtection: true,
      ipv6: 'block',
      tunnels: [
        {
          link: 'awg-work',
          dns: ['10.64.0.1'],
          endpoints: [{ address: '198.51.100.7', port: 51820, protocol: 'udp' }],
        },
        { dns: [], endpoints: [{ address: '192.0.2.10', port: 1080, protocol: 'tcp' }] },
      ],
    });
    expect(
      pfPolicyFromFirewallPolicy({
        fwmarkMask: 1,
        bypassMark: 1,
        killSwitch: 'allowLan',
        dnsLeakProtection: false,
        apps: [],
        blockMarks: [],
        tunnels: [],
      }),
    ).toMatchObject({ killSwitch: true, allowLan: true, ipv6: 'tunnel' });
  });
});
