/**
 * The active probe of each tunnel that configures one (`tunnels.<name>.health`,
 * docs/architecture.md "Tunnel health"): every `interval` one probe through the tunnel
 * (probe-run.ts), given `timeout`; `failures` consecutive failures report the tunnel failed
 * (HealthMonitor.setProbe → `down`, reason `probe-failed`), one success reports it clear (the
 * monitor's RECOVER_HOLD_MS keeps it from flapping). Probes start every `interval` from the
 * previous start, one at a time (timeout < interval), so a fault is seen within
 * (failures − 1) × interval + interval + timeout.
 */
import type { Config } from '../config/schema.js';
import { isWgLike, linkName } from '../config/schema-tunnels.js';
import { durationMs, type HealthProbe, type TunnelHealth } from '../config/schema-health.js';
import type { InprocEngineHost } from '../resources/engine/inproc.js';

/** a proxy tunnel's upstream dialer (proxy/types.ts Dialer, through the engine host) */
export type Dialer = NonNullable<ReturnType<NonNullable<InprocEngineHost['proxyDialer']>>>;

/** how a probe reaches the tunnel: its link (bound socket) or the proxy's upstream dialer */
export type ProbeRoute = { link: string } | { dialer: Dialer };

/** one probe: resolves on success, rejects (with why) on failure; must honour `signal` */
export type ProbeRunner = (
  probe: HealthProbe,
  route: ProbeRoute,
  o: { timeoutMs: number; signal: AbortSignal },
) => Promise<void>;

export interface TunnelProberOptions {
  run: ProbeRunner;
  /** the tunnel's probe failed past its threshold (`failed`: why), or is clear (undefined) */
  report: (tunnel: string, failed: string | undefined) => void;
  /** a proxy tunnel's running upstream (undefined: not running, the probe fails) */
  dialer: (tunnel: string) => Dialer | undefined;
}

interface Running {
  key: string;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;
  failures: number;
  failed: boolean;
  stopped: boolean;
  /** the last failed probe (kept after a success): why, and when (epoch ms) */
  lastFailure: { error: string; atMs: number } | undefined;
}

/** what status shows of a tunnel's probe: consecutive failures now, the last failure */
export interface ProbeState {
  failures: number;
  /** why the last failed probe failed (`tcp 10.0.0.1:443: connect ECONNREFUSED`) */
  lastFailure?: string;
  /** when (RFC 3339) */
  lastFailureAt?: string;
}

export interface ProbeSpec {
  tunnel: string;
  probe: HealthProbe;
  intervalMs: number;
  timeoutMs: number;
  failures: number;
  wgLike: boolean;
}

/** the probes a config asks for (checked: durations parse, timeout < interval) */
export function probeSpecs(cfg: Config): ProbeSpec[] {
  const out: ProbeSpec[] = [];
  for (const [tunnel, t] of Object.entries(cfg.tunnels)) {
    const h: TunnelHealth | undefined = t.health;
    if (!h) continue;
    const intervalMs = durationMs(h.interval);
    const timeoutMs = durationMs(h.timeout);
    if (intervalMs === undefined || timeoutMs === undefined) continue;
    out.push({
      tunnel,
      probe: h.probe,
      intervalMs: Math.max(1000, intervalMs),
      timeoutMs: Math.min(timeoutMs, intervalMs),
      failures: h.failures,
      wgLike: isWgLike(t),
    });
  }
  return out;
}

export class TunnelProber {
  private running = new Map<string, Running>();

  constructor(private readonly o: TunnelProberOptions) {}

  /** Follow the config: start new probes, restart changed ones, stop removed ones. */
  sync(cfg: Config): void {
    const specs = new Map(probeSpecs(cfg).map((s) => [s.tunnel, s]));
    for (const [tunnel, r] of this.running) {
      const s = specs.get(tunnel);
      if (s && JSON.stringify(s) === r.key) continue;
      this.stop(tunnel, r);
    }
    for (const [tunnel, s] of specs) if (!this.running.has(tunnel)) this.start(s);
  }

  /** consecutive failures now (tests, status) */
  failuresOf(tunnel: string): number {
    return this.running.get(tunnel)?.failures ?? 0;
  }

  /** the probe's state for status; undefined: the tunnel has no probe */
  stateOf(tunnel: string): ProbeState | undefined {
    const r = this.running.get(tunnel);
    if (!r) return undefined;
    const f = r.lastFailure;
    return {
      failures: r.failures,
      ...(f ? { lastFailure: f.error, lastFailureAt: new Date(f.atMs).toISOString() } : {}),
    };
  }

  close(): void {
    for (const [t, r] of this.running) this.stop(t, r);
  }

  private stop(tunnel: string, r: Running): void {
    r.stopped = true;
    if (r.timer) clearTimeout(r.timer);
    r.abort?.abort();
    this.running.delete(tunnel);
    if (r.failed) this.o.report(tunnel, undefined);
  }

  private start(s: ProbeSpec): void {
    const r: Running = {
      key: JSON.stringify(s),
      timer: undefined,
      abort: undefined,
      failures: 0,
      failed: false,
      stopped: false,
      lastFailure: undefined,
    };
    this.running.set(s.tunnel, r);
    const once = (): void => {
      if (r.stopped) return;
      const started = Date.now();
      void this.probeOnce(s, r).then(() => {
        if (r.stopped) return;
        r.timer = setTimeout(once, Math.max(0, s.intervalMs - (Date.now() - started)));
        r.timer.unref();
      });
    };
    r.timer = setTimeout(once, 0);
    r.timer.unref();
  }

  private async probeOnce(s: ProbeSpec, r: Running): Promise<void> {
    let route: ProbeRoute | undefined;
    if (s.wgLike) route = { link: linkName(s.tunnel) };
    else {
      const d = this.o.dialer(s.tunnel);
      if (d) route = { dialer: d };
    }
    const ac = new AbortController();
    r.abort = ac;
    const timer = setTimeout(
      () => ac.abort(new Error(`no answer within ${s.timeoutMs} ms`)),
      s.timeoutMs,
    );
    let error: string | undefined;
    try {
      if (!route) throw new Error('the proxy tunnel is not running');
      await raceAbort(
        this.o.run(s.probe, route, { timeoutMs: s.timeoutMs, signal: ac.signal }),
        ac.signal,
      );
    } catch (e) {
      error = (e as Error).message || String(e);
    } finally {
      clearTimeout(timer);
      r.abort = undefined;
    }
    if (r.stopped) return;
    if (error === undefined) {
      r.failures = 0;
      if (r.failed) {
        r.failed = false;
        this.o.report(s.tunnel, undefined);
      }
      return;
    }
    r.failures++;
    r.lastFailure = { error: `${describe(s.probe)}: ${error}`, atMs: Date.now() };
    if (r.failures >= s.failures) {
      const why = `${describe(s.probe)}: ${error} (${r.failures} in a row)`;
      r.failed = true;
      this.o.report(s.tunnel, why);
    }
  }
}

export function describe(p: HealthProbe): string {
  return 'url' in p ? `GET ${p.url}` : 'tcp' in p ? `tcp ${p.tcp}` : `ping ${p.icmp}`;
}

/** a runner that ignores its signal still ends at the timeout */
function raceAbort(p: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
