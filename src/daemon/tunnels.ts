/**
 * The daemon's tunnels: the in-process engines and their health. The first run adopts the
 * engines `awg apply` left (they move into this process, so that run plans no change); every
 * run points the engines at the physical network it probed (the underlay) and, when the
 * underlay changed meanwhile, kicks them so that peers learn the new source address. Health
 * is evaluated on a timer and on engine events: its transitions are `tunnel` events, and a
 * change of the set of down tunnels wakes the loop (the firewall's rule actions and the placer
 * follow it). Amneziawg tunnels with obfuscation profiles move to the next one when down for
 * `handshake` or `no-data`, and start with the one remembered for the network
 * (profile-switch.ts): each switch is a `profile` event and a wake, whose run updates the engine.
 * Sticky rules keep their fallback after their tunnel is back until the network or the config
 * changes (sticky.ts): each hold that shows, and each release, is a `sticky` event.
 */
import { toAwgError } from '../errors.js';
import { withActiveProfiles } from '../config/profiles.js';
import type { Config } from '../config/schema.js';
import type { Prepared } from '../pipeline/prepare.js';
import type { ApplyContext } from '../resources/driver.js';
import type { EngineChange, InprocEngineHost, Underlay } from '../resources/engine/inproc.js';
import type { HostFacts } from '../model/desired.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';
import type { DaemonEvent, WakeReason } from './core.js';
import { resetCandidates, resetTunnelConnections, type TunnelMark } from './conn-reset.js';
import { TunnelProber } from './health-probe.js';
import { gatewayMac } from './neighbours.js';
import { linuxProbeSockets, probeRunner, type ProbeSockets } from './probe-run.js';
import { ProfileSwitcher, type NetworkId, type ProfileSwitch } from './profile-switch.js';
import { StickyHolds, type StickyChange, type StickyRelease } from './sticky.js';
import { HealthMonitor } from './tunnel-health.js';

export interface TunnelsOptions {
  engines: InprocEngineHost;
  /** the reporter, and the state directory the working profiles are remembered in */
  host: { reporter: Reporter; state?: StateStore };
  emit: (e: DaemonEvent) => void;
  wake: (reason: WakeReason) => void;
  /** the config followed: health is evaluated against it (none yet: not evaluated) */
  config: () => Config | undefined;
  /** a run or teardown is under way (an engine that stops then is its doing, not a fault) */
  running: () => boolean;
  /** how the configured probes hold to a tunnel's link on this platform (default: Linux's) */
  probeSockets?: () => ProbeSockets | undefined;
  /** reset the connections through tunnels that went down (default: SOCK_DESTROY, conn-reset.ts) */
  resetConnections?: typeof resetTunnelConnections;
}

const now = () => new Date().toISOString();

export class Tunnels {
  readonly engines: InprocEngineHost;
  readonly health: HealthMonitor;
  readonly profiles: ProfileSwitcher;
  /** rules held on their fallback (`sticky: true`) */
  readonly sticky: StickyHolds;
  /** the physical network the last run probed */
  private underlay: Underlay = {};
  private adopted = false;
  /** the underlay changed since the engines were last kicked (wakes coalesce: not a reason) */
  private moved = false;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;
  /** the configured probes (tunnels.<name>.health) */
  readonly prober: TunnelProber;
  /** the run under way: the down set its firewall was planned with, the tunnels' marks */
  private planned: { down: ReadonlySet<string>; marks: TunnelMark[]; mask: number } | undefined;
  /** the down set the last converged run applied */
  private appliedDown: ReadonlySet<string> = new Set();

  constructor(private readonly o: TunnelsOptions) {
    this.engines = o.engines;
    this.health = new HealthMonitor(o.engines);
    this.profiles = new ProfileSwitcher(o.host.state);
    this.sticky = new StickyHolds(o.host.state);
    this.health.profiles = this.profiles;
    this.health.sticky = this.sticky;
    this.prober = new TunnelProber({
      run: (p, route, ro) => probeRunner(o.probeSockets?.() ?? linuxProbeSockets)(p, route, ro),
      dialer: (t) => this.engines.proxyDialer?.(t),
      report: (t, failed) => {
        this.health.setProbe(t, failed);
        this.tick();
      },
    });
    this.health.probes = this.prober;
  }

  /**
   * What the daemon's config reads take from the tunnels: the tunnels not up now, and each
   * tunnel's active obfuscation profile on the network the read's facts show.
   */
  readOptions(): {
    down: ReadonlySet<string>;
    held: (config: Config, facts: HostFacts) => ReadonlySet<string>;
    profiles: (config: Config, facts: HostFacts) => ReadonlyMap<string, string>;
  } {
    return {
      down: this.down,
      // another network ends every sticky hold: this read already routes by the tunnels
      held: (_config, facts) => {
        this.stickyChanged(this.sticky.setNetwork(networkOf(facts)));
        return this.held;
      },
      profiles: (config, facts) => {
        for (const s of this.profiles.setNetwork(networkOf(facts), config)) this.switched(s);
        return new Map(this.profiles.profiles);
      },
    };
  }

  /** tunnels not up now: rules take their fallback */
  get down(): ReadonlySet<string> {
    return this.health.down;
  }

  /** rules held on their fallback although their tunnel is up (`sticky: true`) */
  get held(): ReadonlySet<string> {
    return this.sticky.held;
  }

  /** End every sticky hold (`awg apply`): the run that follows routes by the tunnels again. */
  releaseSticky(reason: StickyRelease): void {
    if (this.stickyChanged(this.sticky.releaseAll(reason))) this.o.wake('engine');
  }

  /** the physical interface of the default route the last run probed */
  physical(): string | undefined {
    return this.underlay.v4 || this.underlay.v6;
  }

  /** Follow the engines' events, and evaluate health every `everyMs` too (0: on events only). */
  start(everyMs: number): void {
    this.unsubscribe = this.engines.onChange((c) => this.onEngine(c));
    if (everyMs > 0) {
      this.timer = setInterval(() => this.tick(), everyMs);
      this.timer.unref();
    }
  }

  /** No more health evaluation (the daemon stops); engine events are still followed until close. */
  stopHealth(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.prober.close();
  }

  /** Close every engine (the TUNs stay), then stop following their events. */
  async close(): Promise<void> {
    await this.engines.closeAll();
    this.unsubscribe?.();
  }

  /** The network moved (not our own firewall): kick the engines after the next loop run. */
  networkMoved(): void {
    this.moved = true;
  }

  /** After a loop run: the kick a network move asked for. */
  kickIfMoved(): void {
    if (!this.moved) return;
    this.moved = false;
    this.engines.kick();
  }

  /** Before a run converges: adopt `awg apply`'s engines (first run), point them at the underlay. */
  async beforeRun(
    p: Pick<Prepared, 'desired' | 'facts'> & Partial<Pick<Prepared, 'model'>>,
    ctx: ApplyContext,
  ): Promise<void> {
    const policy = p.model?.policy;
    this.planned = {
      down: this.health.down,
      marks: policy?.tunnels.map((t) => ({ tunnel: t.name, mark: t.mark })) ?? [],
      mask: policy?.fwmarkMask ?? 0,
    };
    if (!this.adopted) {
      this.adopted = true;
      const moved = await this.engines.adopt(p.desired, ctx).catch((e: unknown) => {
        this.o.emit({
          type: 'error',
          at: now(),
          kind: toAwgError(e).kind,
          message: `adopting engines: ${(e as Error).message}`,
        });
        return [] as string[];
      });
      if (moved.length)
        this.o.host.reporter.report({
          type: 'info',
          message: `adopted engine(s) ${moved.join(', ')} from awg apply`,
        });
    }
    // the engines' sockets leave by the physical interface this run probed (macOS: re-pinned)
    this.underlay = {
      ...(p.facts.defaultRouteV4 ? { v4: p.facts.defaultRouteV4.interface } : {}),
      ...(p.facts.defaultRouteV6 ? { v6: p.facts.defaultRouteV6.interface } : {}),
    };
    this.engines.setUnderlay?.(this.underlay);
  }

  /**
   * After a converged run: its firewall holds the fallbacks of the tunnels it was planned down;
   * the connections still running through those that just went down are reset (conn-reset.ts),
   * so their apps reconnect by the fallback. Then health is re-evaluated.
   */
  afterRun(): void {
    const p = this.planned;
    this.planned = undefined;
    if (p) {
      const fresh = resetCandidates(
        p.marks,
        p.down,
        this.appliedDown,
        this.o.config()?.rules ?? [],
      );
      this.appliedDown = p.down;
      if (fresh.length && p.mask) void this.reset(fresh, p.mask);
    }
    this.tick();
  }

  private async reset(marks: TunnelMark[], mask: number): Promise<void> {
    try {
      const r = await (this.o.resetConnections ?? resetTunnelConnections)(marks, mask);
      for (const [t, n] of r.reset)
        this.o.host.reporter.report({
          type: 'info',
          message: `tunnel ${t} is down: reset ${n} connection(s) through it (their apps reconnect by the fallback)`,
        });
    } catch (e) {
      this.o.emit({
        type: 'error',
        at: now(),
        kind: toAwgError(e).kind,
        message: `resetting connections through ${marks.map((m) => m.tunnel).join(', ')}: ${(e as Error).message}`,
      });
    }
  }

  /**
   * Re-evaluate tunnel health (timer, engine events, a converged run): emit transitions and
   * wake the loop when the set of down tunnels changes.
   */
  tick(): void {
    const cfg = this.o.config();
    if (!cfg || this.closed) return;
    this.prober.sync(cfg);
    // the data path's control sizes (external engines) follow the active profile's S1-S3
    const { changes, downChanged } = this.health.tick(
      withActiveProfiles(cfg, this.profiles.profiles),
    );
    for (const c of changes)
      this.o.emit({
        type: 'tunnel',
        at: now(),
        tunnel: c.tunnel,
        state: c.state,
        ...(c.error ? { error: c.error } : {}),
        ...(c.reason ? { reason: c.reason } : {}),
        ...(c.lastUpMs > 0 ? { lastUp: new Date(c.lastUpMs).toISOString() } : {}),
      });
    // sticky rules whose tunnel went down hold their fallback; a changed config ends the holds
    // (an engine that stopped is awg's doing, e.g. a run replacing it: no hold)
    const released = this.stickyChanged(
      this.sticky.follow(
        cfg,
        this.health.down,
        Date.now(),
        (t) => this.health.ratingOf(t)?.reason !== 'stopped',
      ),
    );
    // the followed config's tunnels only (a diff of another config must not reset them)
    this.profiles.prune(cfg);
    let switched = false;
    for (const name of Object.keys(cfg.tunnels)) {
      const s = this.profiles.rate(cfg, name, this.health.ratingOf(name));
      if (s) switched = this.switched(s);
    }
    if (downChanged || switched || released) this.o.wake('engine');
  }

  /** sticky holds that show (their tunnel is up): an event each; true when one was released */
  private stickyChanged(changes: StickyChange[]): boolean {
    for (const c of changes) {
      const { rule, tunnel, sinceMs } = c.hold;
      this.o.emit({
        type: 'sticky',
        at: now(),
        rule,
        tunnel,
        held: c.type === 'held',
        since: new Date(sinceMs).toISOString(),
        ...(c.type === 'released' ? { reason: c.reason } : {}),
      });
      this.o.host.reporter.report({
        type: 'info',
        message:
          c.type === 'held'
            ? `rule ${rule}: tunnel ${tunnel} is up again; the rule keeps its fallback (sticky) until the network or the config changes`
            : `rule ${rule}: back to tunnel ${tunnel} (sticky hold ended: ${c.reason === 'apply' ? 'awg apply' : `the ${c.reason} changed`})`,
      });
    }
    return changes.some((c) => c.type === 'released');
  }

  /** a profile switch: an event, and the next run applies it */
  private switched(s: ProfileSwitch): true {
    this.o.emit({ type: 'profile', ...s });
    this.o.host.reporter.report({
      type: 'info',
      message: `tunnel ${s.tunnel}: obfuscation profile ${s.from} → ${s.to} (${s.reason === 'network' ? 'the one that worked on this network' : `down: ${s.reason}`})`,
    });
    return true;
  }

  private onEngine(c: EngineChange): void {
    switch (c.type) {
      case 'handshake':
        this.o.emit({ type: 'handshake', at: now(), tunnel: c.tunnel, peer: c.peer });
        this.tick();
        return;
      case 'handshake-failed':
        this.tick();
        return;
      case 'stopped':
        this.tick();
        if (this.o.running()) return;
        this.o.wake('engine');
        return;
      case 'health':
        this.health.setProxy(c.tunnel, c.state, c.error);
        if (c.state === 'auth-failed')
          this.o.emit({
            type: 'error',
            at: now(),
            kind: 'permission',
            message: `tunnel ${c.tunnel}: the proxy refused our credentials${c.error ? `: ${c.error}` : ''} (fix tunnels.${c.tunnel}.auth; retrying will not help)`,
          });
        this.tick();
        return;
      case 'endpoint':
        this.o.wake('engine');
        return;
      case 'started':
        return;
    }
  }
}

/**
 * the network the facts show: the default route's gateway and interface (v4 first), its MAC,
 * the SSID of that interface when it is a Wi-Fi link (resources/wifi.ts)
 */
export function networkOf(
  facts: Pick<HostFacts, 'defaultRouteV4' | 'defaultRouteV6' | 'wifi'>,
  mac: (gateway: string, dev: string) => string | undefined = gatewayMac,
): NetworkId | undefined {
  const r = facts.defaultRouteV4 ?? facts.defaultRouteV6;
  if (!r?.gateway || !r.interface) return undefined;
  const m = mac(r.gateway, r.interface);
  const ssid = facts.wifi?.interface === r.interface ? facts.wifi.ssid : undefined;
  return {
    gateway: r.gateway,
    interface: r.interface,
    ...(m ? { mac: m } : {}),
    ...(ssid ? { ssid } : {}),
  };
}
