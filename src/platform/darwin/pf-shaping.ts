/**
 * Limits on macOS: PF's `dummynet` rules that send traffic into awg's dummynet pipes
 * (dnctl.ts). Pure; golden-tested. Rendered into the anchor `com.awg/awg` (pf-render.ts)
 * after its translation rules and before its filter rules (the order of /etc/pf.conf's own
 * anchors: `rdr-anchor`, `dummynet-anchor`, `anchor`).
 *
 * What a rule can match decides the design (xnu bsd/net/pf.c pf_test_dummynet, read in the
 * public source): interface, direction, family, protocol, addresses, ports, TCP flags, tags.
 * Not `user`/`group`: dummynet rules never look at the socket's owner, so shaping cannot
 * be keyed to a process or a uid. What PF can tell apart is the port: the flow router
 * (resources/flow/flow-router.ts) dials a limited class's connections from a local port in
 * that class's range (dnctl.ts darwinClassPorts, 45056-49151, below the ephemeral range), so
 * - upload: `dummynet out quick proto tcp from any port LO:HI to any pipe N` (whatever
 *   interface: the physical one for direct flows, a tunnel's utun for its flows);
 * - download: `dummynet in quick proto tcp from any to any port LO:HI pipe N+1`.
 * A tunnel's own limit matches its utun: `dummynet out|in quick on $awg_x all pipe T`.
 *
 * One packet, several pipes: after a pipe, PF evaluates the dummynet rules again from the
 * rule after the one that matched (pf_test_dummynet's `prev_matching_rule`), so a limited
 * rule's flow in a limited tunnel passes its class pipe, then the tunnel's: the tunnel rules
 * come after the class rules. Loopback is never shaped (`no dummynet quick on lo0`): the
 * apps' leg to the router is lo0.
 */
import { ANCHOR_ROOT as ROOT, linkMacro } from './pf-names.js';

export interface PfShapingClass {
  n: number;
  /** `rule/<name>` or `pid/<pid>` (a comment on the rule) */
  name: string;
  /** the class's local ports (dnctl.ts darwinClassPorts) */
  ports: [number, number];
  /** pipe numbers, per limited direction */
  up?: number;
  down?: number;
}

export interface PfShapingTunnel {
  /** the tunnel's link (`awg-work`), bound to its utun at load time */
  link: string;
  up?: number;
  down?: number;
}

export interface PfShaping {
  classes: PfShapingClass[];
  tunnels: PfShapingTunnel[];
}

export function renderDummynetRules(s: PfShaping): string[] {
  const l = ['no dummynet quick on lo0 all'];
  for (const c of s.classes) {
    const range = `${c.ports[0]}:${c.ports[1]}`;
    if (c.up !== undefined)
      l.push(`dummynet out quick proto tcp from any port ${range} to any pipe ${c.up}`);
    if (c.down !== undefined)
      l.push(`dummynet in quick proto tcp from any to any port ${range} pipe ${c.down}`);
  }
  for (const t of s.tunnels) {
    const m = `$${linkMacro(t.link)}`;
    if (t.up !== undefined) l.push(`dummynet out quick on ${m} all pipe ${t.up}`);
    if (t.down !== undefined) l.push(`dummynet in quick on ${m} all pipe ${t.down}`);
  }
  return l;
}

/** does a rendered anchor carry dummynet rules? */
export function hasDummynet(ruleset: string): boolean {
  return /^(?:no )?dummynet\b/m.test(ruleset);
}

/** the main ruleset's hook for our anchors' dummynet rules, as rendered and as `pfctl -s dummynet` lists it */
export const DUMMYNET_ANCHOR_RULE = `dummynet-anchor "${ROOT}/*"`;
export const MAIN_DUMMYNET_ANCHOR_RULE = `${DUMMYNET_ANCHOR_RULE} all`;

/**
 * The main ruleset with our `dummynet-anchor` hook just before our filter hook (`anchor
 * "com.awg/*"`, pf-render.ts renderMainRuleset), or at the end without one. pfctl takes a
 * `dummynet-anchor` after filter rules (scripts that append `dummynet-anchor` and `anchor`
 * lines to /etc/pf.conf load: test/fixtures/macos/dummynet/).
 */
export function withDummynetAnchor(mainRuleset: string): string {
  const lines = mainRuleset.replace(/\n$/, '').split('\n');
  if (lines.some((x) => x.trim() === DUMMYNET_ANCHOR_RULE)) return mainRuleset;
  const at = lines.findIndex((x) => x.trim() === `anchor "${ROOT}/*"`);
  lines.splice(at < 0 ? lines.length : at, 0, DUMMYNET_ANCHOR_RULE);
  return lines.join('\n') + '\n';
}
