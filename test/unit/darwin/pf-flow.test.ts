/**
 * PF rules of the macOS flow router (pf-flow.ts), golden-tested like pf-render.test.ts. Not
 * loaded into a real PF: the goldens pin the text; pfctl's acceptance of it is unverified.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRules, effectiveRoute } from '../../../src/model/match.js';
import {
  NAT_ANCHOR_RULE,
  RDR_ANCHOR_RULE,
  pfFlowRouterFor,
  renderFlowFilter,
  renderFlowLoopback,
  renderFlowTranslation,
  withTranslationAnchors,
  type PfFlowRouter,
} from '../../../src/platform/darwin/pf-flow.js';
import {
  bindPfLinks,
  renderMainRuleset,
  renderPfAnchor,
  type PfPolicy,
} from '../../../src/platform/darwin/pf-render.js';
import type { Rule } from '../../../src/config/schema.js';
import { rulesCanBlock } from '../../../src/resources/flow/flow-router.js';
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
      endpoints: [{ address: '198.51.100.7', port: 51820, protocol: 'udp' }],
    },
    { dns: [], endpoints: [{ address: '192.0.2.10', port: 1080, protocol: 'tcp' }] },
  ],
};
const flow: PfFlowRouter = {
  port: 47321,
  routerUid: 0,
  ipv6: true,
  skip: ['198.51.100.7', '192.0.2.10'],
};

/** the rule kinds of a rendered anchor, in order (translation must precede filtering) */
const kinds = (text: string) =>
  text
    .split('\n')
    .filter((l) => l && !l.startsWith('#') && !l.includes(' = '))
    .map((l) =>
      l.startsWith('table')
        ? 'table'
        : l.startsWith('rdr') || l.startsWith('nat')
          ? 'translation'
          : 'filter',
    );

describe('flow router PF rules', () => {
  it('kill switch + flow router, v4 and v6, TCP and the UDP of user processes (golden)', () => {
    const text = renderPfAnchor({ ...base, flowRouter: flow });
    golden('flow-killswitch.pf', text);
    const k = kinds(text);
    expect(k.lastIndexOf('translation')).toBeLessThan(k.indexOf('filter'));
    // the redirect is seen before the kill switch passes the tunnel or blocks the rest
    const lines = text.split('\n');
    const routeTo = lines.findIndex((l) => l.includes('route-to lo0'));
    expect(routeTo).toBeGreaterThan(
      lines.findIndex((l) => l.startsWith('block drop out quick proto { udp tcp }')),
    );
    expect(routeTo).toBeLessThan(lines.findIndex((l) => l.startsWith('pass quick on $awg_work')));
    expect(routeTo).toBeLessThan(lines.indexOf('block drop out quick all'));
  });

  it('no kill switch, IPv4 only: IPv6 blocked for everyone, the router sees v4 (golden)', () => {
    golden(
      'flow-no-killswitch.pf',
      renderPfAnchor({
        ...base,
        killSwitch: false,
        dnsLeakProtection: false,
        ipv6: 'block',
        flowRouter: { ...flow, ipv6: false },
      }),
    );
  });

  it('the router never redirects its own sockets, loopback, or the skip list; negation is by table', () => {
    const t = renderFlowTranslation(flow);
    const f = renderFlowFilter(flow);
    expect(t[0]).toBe(
      'table <awg_flow_skip> const { 127.0.0.0/8 169.254.0.0/16 224.0.0.0/4 255.255.255.255/32 ::1/128 fe80::/10 ff00::/8 192.0.2.10 198.51.100.7 }',
    );
    for (const l of f.filter((x) => x.includes('route-to'))) {
      expect(l).toContain(l.includes('proto tcp') ? 'user != 0' : 'user >= 501');
      expect(l).toContain('on ! lo0');
      expect(l).toContain('to ! <awg_flow_skip>');
    }
    // UDP: user processes only, stateless on the way out; the lo0 state is bound to lo0
    expect(f.filter((x) => x.includes('proto udp'))).toEqual([
      'pass out quick on ! lo0 route-to lo0 inet proto udp from any to ! <awg_flow_skip> user >= 501 no state',
      'pass out quick on ! lo0 route-to lo0 inet6 proto udp from any to ! <awg_flow_skip> user >= 501 no state',
    ]);
    expect(renderFlowLoopback(flow)).toEqual([
      'pass out quick on lo0 inet proto udp from any to ! <awg_flow_skip> keep state (if-bound)',
      'pass out quick on lo0 inet6 proto udp from any to ! <awg_flow_skip> keep state (if-bound)',
    ]);
    expect(t.filter((x) => x.startsWith('nat'))).toEqual([
      'nat on lo0 inet proto udp from any to ! <awg_flow_skip> -> 127.0.0.1 port 1024:65535',
      'nat on lo0 inet6 proto udp from any to ! <awg_flow_skip> -> ::1 port 1024:65535',
    ]);
    expect([...t, ...f].join('\n')).not.toMatch(/! \{/);
  });

  it('a policy without a flow router renders exactly as before (same goldens as pf-render)', () => {
    golden(
      'killswitch-full.pf',
      renderPfAnchor({
        ...base,
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
      }),
    );
  });

  it('an unbound tunnel macro comments out only its rules; the redirect stays', () => {
    const { text, unbound } = bindPfLinks(renderPfAnchor({ ...base, flowRouter: flow }), {});
    expect(unbound).toEqual(['awg_work']);
    expect(text).toContain(
      '\nrdr pass on lo0 inet proto tcp from any to ! <awg_flow_skip> -> 127.0.0.1 port 47321\n',
    );
    expect(text).toContain('\npass out quick on ! lo0 route-to lo0 inet proto tcp');
  });

  it('main ruleset: nat-anchor and rdr-anchor go among the translation rules, once', () => {
    const apple = [
      'scrub-anchor "com.apple/*"',
      'nat-anchor "com.apple/*"',
      'rdr-anchor "com.apple/*"',
      'dummynet-anchor "com.apple/*"',
      'anchor "com.apple/*"',
      'load anchor "com.apple" from "/etc/pf.anchors/com.apple"',
    ].join('\n');
    const main = withTranslationAnchors(renderMainRuleset(apple));
    expect(main.split('\n')).toEqual([
      'scrub-anchor "com.apple/*"',
      'nat-anchor "com.apple/*"',
      'rdr-anchor "com.apple/*"',
      NAT_ANCHOR_RULE,
      RDR_ANCHOR_RULE,
      'dummynet-anchor "com.apple/*"',
      'anchor "com.apple/*"',
      'load anchor "com.apple" from "/etc/pf.anchors/com.apple"',
      '# awg',
      'anchor "com.awg/*"',
      '',
    ]);
    expect(withTranslationAnchors(main)).toBe(main);
    expect(withTranslationAnchors('anchor "x"\n')).toBe(
      `${NAT_ANCHOR_RULE}\n${RDR_ANCHOR_RULE}\nanchor "x"\n`,
    );
    // a ruleset an earlier awg hooked with rdr-anchor alone: nat-anchor goes before it
    expect(withTranslationAnchors(`nat-anchor "a"\n${RDR_ANCHOR_RULE}\nanchor "x"\n`)).toBe(
      `nat-anchor "a"\n${NAT_ANCHOR_RULE}\n${RDR_ANCHOR_RULE}\nanchor "x"\n`,
    );
  });
  it('property: rules that cannot block never give a blocked route, whatever matches and whichever tunnels are down', () => {
    const rule = fc.record({
      target: fc.constantFrom('direct', 'block', 'A', 'B'),
      fallback: fc.constantFrom('allow-direct', 'block', 'failover', 'drop'),
      enabled: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 5 }),
        fc.subarray(['A', 'B']),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        (rs, down, matches) => {
          const rules = rs.map(
            (x, i) =>
              ({ name: `r${i}`, match: { name: matches[i] ? 'app' : 'other' }, ...x }) as Rule,
          );
          const chain = compileRules(rules).failoverChain('/bin/app');
          const route = chain.length ? effectiveRoute(chain, (t) => !down.includes(t)) : 'direct';
          return rulesCanBlock(rules) || route !== 'blocked';
        },
      ),
    );
  });
  it('rulesCanBlock asks match.ts; the router settings follow the policy', () => {
    const r = (x: Partial<Rule>) =>
      ({ name: 'r', match: { name: 'x' }, target: 'work', ...x }) as Rule;
    expect(rulesCanBlock([r({ target: 'direct' })])).toBe(false);
    expect(rulesCanBlock([r({ fallback: 'allow-direct' })])).toBe(false);
    expect(rulesCanBlock([r({ target: 'block', enabled: false })])).toBe(false);
    expect(rulesCanBlock([r({})])).toBe(true); // fallback defaults to block
    expect(rulesCanBlock([r({ fallback: 'failover' })])).toBe(true);
    expect(rulesCanBlock([r({ target: 'block' })])).toBe(true);
    expect(rulesCanBlock([r({ target: 'direct', fallback: 'drop' })])).toBe(true); // match.ts: drop wins over direct
    expect(rulesCanBlock([r({ fallback: 'allow-direct' }), r({ fallback: 'drop' })])).toBe(true);
    const policy = {
      fwmarkMask: 0xff0000,
      bypassMark: 0xff0000,
      killSwitch: 'on' as const,
      dnsLeakProtection: true,
      apps: [],
      blockMarks: [],
      defaultRoute: { mark: 0x10000, ipv6: 'block' as const },
      tunnels: [
        {
          name: 'work',
          link: 'awg-work',
          mark: 0x10000,
          resolvers: [],
          endpoints: [{ address: '198.51.100.7', port: 51820, protocol: 'udp' as const }],
        },
        {
          name: 'socks',
          mark: 0x20000,
          resolvers: [],
          endpoints: [
            { address: '192.0.2.10', port: 1080, protocol: 'tcp' as const },
            { address: '198.51.100.7', port: 443, protocol: 'tcp' as const },
          ],
        },
      ],
    };
    expect(pfFlowRouterFor(policy, { port: 47321 })).toEqual({
      port: 47321,
      routerUid: 0,
      ipv6: false,
      skip: ['192.0.2.10', '198.51.100.7'],
    });
    expect(
      pfFlowRouterFor({ ...policy, defaultRoute: undefined } as never, {
        port: 1,
        routerUid: 260,
      }),
    ).toMatchObject({ ipv6: true, routerUid: 260 });
  });
});
