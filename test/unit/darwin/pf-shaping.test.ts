/**
 * PF's dummynet rules for limits (platform/darwin/pf-shaping.ts) and the main ruleset's hook;
 * read back as Network Link Conditioner's rules print (test/fixtures/macos/dummynet/).
 */
import { describe, expect, it } from 'vitest';
import {
  DUMMYNET_ANCHOR_RULE,
  MAIN_DUMMYNET_ANCHOR_RULE,
  hasDummynet,
  renderDummynetRules,
  withDummynetAnchor,
} from '../../../src/platform/darwin/pf-shaping.js';
import {
  ANCHOR_ROOT,
  bindPfLinks,
  renderMainRuleset,
  renderPfAnchor,
} from '../../../src/platform/darwin/pf-render.js';
import { parsePfRules } from '../../../src/platform/darwin/pfctl.js';
import { sections } from './fixtures.js';

const shaping = {
  classes: [
    {
      n: 1,
      name: 'rule/backup',
      ports: [45056, 45183] as [number, number],
      up: 45056,
      down: 45057,
    },
    { n: 2, name: 'pid/4242', ports: [45184, 45311] as [number, number], down: 45059 },
  ],
  tunnels: [{ link: 'awg-home', up: 45120 }],
};

describe('PF dummynet rules', () => {
  it('classes by their ports (upload: source, download: destination), then tunnels by their utun; loopback never', () => {
    expect(renderDummynetRules(shaping)).toEqual([
      'no dummynet quick on lo0 all',
      'dummynet out quick proto tcp from any port 45056:45183 to any pipe 45056',
      'dummynet in quick proto tcp from any to any port 45056:45183 pipe 45057',
      'dummynet in quick proto tcp from any to any port 45184:45311 pipe 45059',
      'dummynet out quick on $awg_home all pipe 45120',
    ]);
  });

  it('in the anchor after the translation rules and before the filter rules; a tunnel rule stays off until its utun is bound', () => {
    const text = renderPfAnchor({
      killSwitch: true,
      allowLan: false,
      dnsLeakProtection: false,
      ipv6: 'block',
      tunnels: [{ link: 'awg-home', dns: [], endpoints: [] }],
      flowRouter: { port: 15200, routerUid: 0, ipv6: false, skip: [] },
      shaping,
    });
    const lines = text.split('\n');
    const rdr = lines.findIndex((l) => l.startsWith('rdr '));
    const first = lines.findIndex((l) => hasDummynet(l));
    const filter = lines.findIndex((l) => /^(pass|block)\b/.test(l));
    expect(rdr).toBeGreaterThan(0);
    expect(first).toBeGreaterThan(rdr);
    expect(filter).toBeGreaterThan(lines.findLastIndex((l) => hasDummynet(l)));
    expect(hasDummynet(text)).toBe(true);
    expect(bindPfLinks(text, {}).text).toContain(
      '# unbound awg_home: dummynet out quick on $awg_home all pipe 45120',
    );
    expect(bindPfLinks(text, { 'awg-home': 'utun4' }).text).toContain(
      'dummynet out quick on $awg_home all pipe 45120',
    );
    const { shaping: _s, ...none } = {
      killSwitch: false,
      allowLan: false,
      dnsLeakProtection: false,
      ipv6: 'block' as const,
      tunnels: [],
      shaping,
    };
    expect(hasDummynet(renderPfAnchor(none))).toBe(false);
  });

  it("the main ruleset's hook: before our filter hook, once; listed as `pfctl -s dummynet` lists anchors", () => {
    expect(DUMMYNET_ANCHOR_RULE).toBe(`dummynet-anchor "${ANCHOR_ROOT}/*"`);
    const main = withDummynetAnchor(renderMainRuleset('anchor "com.apple/*"\n'));
    expect(main).toBe(`anchor "com.apple/*"\n# awg\n${DUMMYNET_ANCHOR_RULE}\nanchor "com.awg/*"\n`);
    expect(withDummynetAnchor(main)).toBe(main);
    expect(MAIN_DUMMYNET_ANCHOR_RULE).toBe(`${DUMMYNET_ANCHOR_RULE} all`);
  });

  it("pfctl -s dummynet's rules (Network Link Conditioner's capture) parse as rules; none is an anchor of ours", () => {
    const nlc = sections('dummynet/dnctl-list-nlc-pipes-and-pfctl-s-dummynet-superuser.txt').get(
      'pfctl -a com.apple.nlc/base -s dummynet',
    )!.text;
    const r = parsePfRules(nlc);
    expect(r.rules).toHaveLength(5);
    expect(r.rules[0]).toBe('no dummynet quick on lo0 all');
    expect(r.rules.every((l) => hasDummynet(l))).toBe(true);
    expect(r.anchors).toEqual([]);
  });
});
