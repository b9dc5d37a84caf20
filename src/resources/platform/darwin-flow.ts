/**
 * Per-app rules on macOS, realised through the flow router. Pure.
 *
 * realiseDarwin (darwin.ts) drops per-app rules with a warning: PF cannot match a process.
 * A host that runs the flow router (resources/flow/flow-router.ts on its darwin wiring,
 * flow-router-darwin.ts: it needs the config's rules and the tunnels' health, so it is the
 * daemon's to host, as placement is on Linux) realises the model with `realiseDarwinFlow`
 * instead: realiseDarwin's resources unchanged, except the PF anchor, which also carries the
 * router's rules (platform/darwin/pf-flow.ts: `route-to lo0` of every uid's TCP SYNs but the
 * router's own and of user processes' UDP, `nat` of that UDP on lo0 to a port per flow, `rdr`
 * on lo0 to the router's port). Kept apart from darwin.ts so that every
 * output without a router stays exactly what realiseDarwin gives.
 *
 * When the router is in the PF anchor: an enabled rule exists, or the default route is a
 * proxy tunnel (whose TCP only the router can carry). Otherwise nothing is redirected and
 * the result is realiseDarwin's.
 *
 * darwinPlatform.realise is this whenever it is given the config (pipeline/prepare.ts always
 * gives it), so `awg diff` plans what the daemon applies. The host's duties (not resources
 * here; resources/flow/flow-router-host.ts does them in the daemon, and a one-shot `awg
 * apply` of a config with rules is refused, cli/commands/apply.ts):
 * - the router listens on 127.0.0.1 and ::1 at `port` (TCP and UDP) before this anchor is
 *   loaded: a SYN redirected to a closed port is answered with a reset, a datagram dropped
 *   (fail-closed, but every app's TCP and UDP fails meanwhile);
 * - pf.conf's main ruleset needs `nat-anchor` and `rdr-anchor "com.awg/*"` among its
 *   translation rules (pf-flow.ts withTranslationAnchors; the firewall driver adds them with
 *   its hook), or the anchor's `nat` and `rdr` never run and what route-to sends to lo0
 *   reaches nothing (fail-closed).
 *
 * The host's own addresses (`localAddresses`) are skipped too: a connection to one of them
 * travels over lo0, where `rdr` would catch it whoever opened it (the router's redial too).
 *
 * Warned, because they differ from Linux: UDP of user processes only (uid >= 501: system
 * daemons' UDP, DNS through mDNSResponder included, follows the routing table), a proxy
 * tunnel carries none of it (its rules' fallbacks decide, flow-udp.ts); destination rules
 * (`to:`: domains by the name a connection sends first, flow-router.ts; UDP by its address);
 * root's processes are not routed per app (the loop avoidance is by uid). Flows into a
 * WireGuard tunnel that is not the default are
 * dialled bound to its utun (IP_BOUND_IF) and follow the interface-scoped routes realiseDarwin
 * gives its prefixes; a destination outside them has no route there and fails (reset), never
 * leaving by another interface.
 */
import { isIP } from 'node:net';
import type { DesiredModel, HostFacts } from '../../model/desired.js';
import { ids } from '../../model/identity.js';
import type { RuleMatcher } from '../../model/match.js';
import type { AnyResource, DesiredState } from '../../model/resources.js';
import { FIRST_USER_UID, pfFlowRouterFor } from '../../platform/darwin/pf-flow.js';
import { renderPfAnchor } from '../../platform/darwin/pf-render.js';
import { isWgLike, type Config } from '../../config/schema.js';
import { darwinPfPolicy, PF_ANCHOR, realiseDarwin } from './darwin-realise.js';
import { realiseDarwinShaping } from './darwin-shaping.js';

export interface DarwinFlowRouterSetup {
  /** where the router listens (127.0.0.1 and ::1): flowRouterPort(config.routing) */
  port: number;
  /** the config's rules, as the router matches them per connection */
  rules: RuleMatcher['rules'];
  /** the router's uid: its own sockets are never redirected (the daemon: 0) */
  routerUid?: number;
  /**
   * The host's own addresses now (every interface's; the daemon re-realises when they
   * change, it wakes on RTM_NEWADDR/DELADDR). Connections to them travel over lo0, where
   * `rdr` (no user match) would redirect them into the router, its own redial included:
   * they are skipped. Without them such connections are reset (the router's loop guard).
   */
  localAddresses?: readonly string[];
}

/** the default route is a proxy tunnel (its TCP only the flow router can carry) */
export function isProxyDefault(c: Pick<Config, 'default' | 'tunnels'>): boolean {
  const t = c.default === 'direct' ? undefined : c.tunnels[c.default];
  return t !== undefined && !isWgLike(t);
}

/**
 * The router's port: `routing.proxyPortBase` itself. Proxy tunnels use base + slot and
 * base + 48 + slot with slots from 1 to 47, so base + 0 is never theirs.
 */
export function flowRouterPort(routing: { proxyPortBase: number }): number {
  return routing.proxyPortBase;
}

/** realiseDarwin's warnings that the router answers (darwin.ts; a test pins the texts) */
export const DROPPED_PER_APP_WARNING =
  "per-app rules are not applied: the macOS flow router needs the config's rules, which this realisation was not given";
const proxyDefaultWarning = (tunnel: string) =>
  `tunnel ${tunnel}: proxy tunnels as the default route need the macOS flow router, which this realisation was not given (no config)`;

/** a runtime limit (`awg limit PID`) under a config without per-app rules: no router, nothing to dial from the class's ports */
export const NO_ROUTER_LIMITS_WARNING =
  'limits: the flow router runs only while the config has an enabled rule (or a proxy tunnel as the default route); without it, processes limited at run time are not shaped on macOS';

/** rules with `to:` under the router (docs/platform-macos.md#destination-rules) */
export const DESTINATION_RULES_WARNING =
  'destination rules (`to:`) on macOS are decided in the flow router: a domain matches the name a TCP connection sends first (TLS SNI, HTTP Host); a connection without one, and every UDP flow, is judged by its address';

/** host addresses worth a skip entry: not loopback or link-local (the table has those), no zone */
function ownAddresses(addrs: readonly string[]): string[] {
  return addrs
    .map((a) => a.replace(/%.*$/, ''))
    .filter(
      (a) =>
        isIP(a) !== 0 &&
        !/^127\./.test(a) &&
        a !== '::1' &&
        !/^169\.254\./.test(a) &&
        !/^fe[89ab]/i.test(a),
    );
}

export function realiseDarwinFlow(
  d: DesiredModel,
  facts: HostFacts,
  router: DarwinFlowRouterSetup,
): DesiredState {
  const base = realiseDarwin(d, facts);
  const policy = d.policy;
  if (!policy) return base;
  const def = policy.defaultRoute
    ? policy.tunnels.find((t) => t.mark === policy.defaultRoute!.mark)
    : undefined;
  const proxyDefault = def && !def.link ? def : undefined;
  const enabled = router.rules.filter((r) => r.enabled !== false);
  if (!enabled.length && !proxyDefault) {
    // limits on classes need the router to dial their flows from the classes' ports
    if (!policy.shaping?.classes.length) return base;
    return {
      ...base,
      warnings: [...base.warnings, NO_ROUTER_LIMITS_WARNING],
    };
  }

  const pf = pfFlowRouterFor(policy, { port: router.port, routerUid: router.routerUid ?? 0 });
  const flowRouter = { ...pf, skip: [...pf.skip, ...ownAddresses(router.localAddresses ?? [])] };
  const ruleset = renderPfAnchor({
    ...darwinPfPolicy(policy, realiseDarwinShaping(d)),
    flowRouter,
  });
  const fwId = ids.firewall(PF_ANCHOR);
  const resources = base.resources.map((r): AnyResource =>
    r.kind === 'firewall' && r.id === fwId ? { ...r, spec: { ...r.spec, ruleset } } : r,
  );

  const answered = new Set([
    DROPPED_PER_APP_WARNING,
    ...(proxyDefault ? [proxyDefaultWarning(proxyDefault.name)] : []),
  ]);
  const warnings = base.warnings.filter((w) => !answered.has(w));
  warnings.push(
    `per-app routing on macOS: UDP is routed per app for user processes only (uid >= ${FIRST_USER_UID}); system daemons' UDP (DNS through mDNSResponder, NTP) follows the routing table, and processes running as uid ${flowRouter.routerUid} are not routed per app`,
  );
  if (proxyDefault)
    warnings.push(
      `tunnel ${proxyDefault.name}: as the default route it carries TCP only (through the flow router); the UDP of user processes no rule sends elsewhere is dropped`,
    );
  if (enabled.some((r) => r.to !== undefined)) warnings.push(DESTINATION_RULES_WARNING);
  return { resources, warnings };
}
