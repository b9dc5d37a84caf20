/**
 * Engines of proxy tunnels (`socks5`, `http`): a ProxyTunnelRuntime per tunnel, hosted in the
 * daemon (inproc.ts delegates here) or in a detached `awg engine` process started by a
 * one-shot `awg apply` (process-host.ts and cli/commands/engine.ts delegate here).
 *
 * What runs, per engine spec `{server, port, redirectPort, redirectPortDirect, fwmark, dns,
 * auth, udp|tls}`:
 * - TCP listeners on 127.0.0.1 and ::1 (loopback only: nothing on the network can use the
 *   proxy through them), port `redirectPort` (strict: a failed dial fails the app's
 *   connection) and `redirectPortDirect` (a failed dial redials the destination directly).
 *   The firewall's nat_out redirects the tunnel's marked TCP there (v4 arrives on 127.0.0.1,
 *   v6 on ::1).
 * - UDP on 127.0.0.1/::1 (Linux: a redirected datagram's destination is read from conntrack):
 *   port `redirectPort` with `udp: true` takes the tunnel's UDP (every port; UDP/53 goes to
 *   the first `dns` server), each flow through its own SOCKS5 UDP ASSOCIATE; port
 *   `redirectPortDirect` takes the UDP of allow-direct rules (through the proxy when it carries
 *   UDP and is up, otherwise directly). Without `udp: true`, port `redirectPort` takes UDP/53
 *   only when the tunnel has `dns` servers: each query as DNS over TCP to the first through
 *   the proxy, answered over UDP. Elsewhere (no conntrack) UDP/53 with `udp: true` is relayed
 *   to the first `dns` server.
 * - `AWG_TEST_PROXY_UDP_IDLE_MS` (tests only) shortens the UDP flows' idle timeout (60 s).
 * - Every socket towards the proxy (or direct) carries `fwmark`, the bypass mark.
 * - The health checker; its changes are reported (`onHealth`).
 *
 * Observation reports the spec a live runtime was started with, its password fingerprint
 * computed (with the host's fingerprint key, by whoever starts it) from the password it
 * really uses, so a changed password plans an update, which restarts the runtime
 * (connections are reset; there is no in-place credential change). A detached engine is
 * handed that fingerprint with the password, never the key.
 *
 * The detached engine (proxy-detached.ts) speaks a tiny control protocol on a Unix socket (the `--uapi` path of
 * `awg engine`, kept in the state directory, not in the WireGuard UAPI directory where
 * `wg show` would find it): `get=1\n\n` is answered UAPI-style with
 * `spec=<json>\nstats=<json>\nerrno=0\n\n`.
 */
import { AwgError, toAwgError } from '../../errors.js';
import { endpointResolverFor, engineResolver } from '../endpoints.js';
import { fingerprint } from '../../config/fingerprint.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import {
  isProxyEngine,
  type EngineSpec,
  type ProxyEngineSpec,
  type Resource,
} from '../../model/resources.js';
import { formatDst, type DialErrorKind } from '../../proxy/types.js';
import type { HealthState } from '../../proxy/upstream-health.js';
import type { ApplyContext, ApplyResult } from '../driver.js';
import { specEqual } from '../../util/canonical.js';

export type ProxyEngineType = ProxyEngineSpec['type'];

/** The resolved password (`tunnels.<name>.auth.password`), or undefined without auth. */
export function proxyPasswordFor(
  spec: ProxyEngineSpec,
  secrets: ReadonlyMap<string, string> | undefined,
): string | undefined {
  if (!spec.config.auth) return undefined;
  const v = secrets?.get(`tunnels.${spec.tunnel}.auth.password`);
  if (v === undefined)
    throw new AwgError(
      'invalid-config',
      `engine ${spec.tunnel}: the proxy password was not resolved (run with the secrets available)`,
    );
  return v;
}

/** The fingerprint of the password a runtime uses (`none` without auth). */
export function passwordFingerprint(
  spec: ProxyEngineSpec,
  password: string | undefined,
  key: Uint8Array,
): string {
  return spec.config.auth ? fingerprint(password ?? '', key) : 'none';
}

/** The spec as the runtime really runs: what observe reports. */
export function liveSpecOf(spec: ProxyEngineSpec, passwordFp: string): ProxyEngineSpec {
  const c = spec.config;
  return {
    ...spec,
    config: { ...c, auth: c.auth ? { username: c.auth.username, password: passwordFp } : null },
  };
}

/** Per-tunnel numbers for status and metrics (`proxyStats()` of the engine hosts). */
export interface ProxyTunnelStatsRow {
  tunnel: string;
  type: ProxyEngineType;
  /** `host:port` of the upstream proxy */
  server: string;
  health: HealthState;
  /** why the last health probe failed (absent while up) */
  error?: string;
  /** payload bytes on the app side, TCP (both listeners) and UDP: up = app → destination */
  bytes: { up: number; down: number };
  connections: { active: number; total: number };
  /** failed dials by kind (`unreachable`, `auth`, `rejected`, `timeout`, `blocked`, `protocol`) */
  dialErrors: Partial<Record<DialErrorKind, number>>;
  /** other connection-level failures (`limit`, `idle-timeout`, `upstream-error`, …) */
  connectionErrors: Record<string, number>;
  /**
   * UDP of the tunnel's apps (the transparent UDP proxies and the DNS relay), when there is a
   * listener for it: `flows` counts the transparent proxies' flows (`proxied` through UDP
   * ASSOCIATE, `direct` sent directly by the allow-direct fallback)
   */
  udp?: {
    datagrams: { up: number; down: number; dropped: number };
    bytes: { up: number; down: number };
    flows?: { active: number; total: number; proxied: number; direct: number };
    /** dropped datagrams and failed flow starts by reason (udp-redirect.ts UdpFlowError) */
    errors?: Record<string, number>;
  };
  /** how UDP/53 of the tunnel's apps is served: `relay` (UDP ASSOCIATE), `tcp` (DNS over TCP through the proxy), or absent (dropped) */
  dns?: 'relay' | 'tcp';
}

type Runtime = import('../../proxy/tunnel.js').ProxyTunnelRuntime;
type UdpOriginSource = import('../../proxy/tunnel.js').UdpOriginSource;

export interface StartedProxy {
  spec: ProxyEngineSpec;
  password: string | undefined;
  /** fingerprint of `password` (host key), what observation reports */
  passwordFingerprint: string;
  runtime: Runtime;
}

export interface ProxyHealthReport {
  tunnel: string;
  state: 'up' | 'down' | 'auth-failed';
  error?: string;
}

export interface StartProxyOptions {
  log?: ((level: 'debug' | 'info' | 'warn', message: string) => void) | undefined;
  onHealth?: (h: ProxyHealthReport) => void;
  /** 127.0.0.1 and ::1 unless a test says otherwise */
  listenHost?: string;
  /** the proxy server's host name → addresses (resources/endpoints.ts; default: the system resolver) */
  resolveServer?: (host: string) => Promise<string[]>;
}

/**
 * A redirected datagram's original destination: ctnetlink by its reply tuple, on one socket
 * opened here. Where ctnetlink does not exist (the binding is `unsupported`: macOS, whose flow
 * router carries proxy tunnels) there is no transparent UDP proxy; any other failure to open
 * it is logged and leaves the tunnel's UDP dropped (the firewall still redirects it).
 */
async function conntrackUdpOrigin(
  log: (level: 'warn', m: string) => void,
): Promise<UdpOriginSource | undefined> {
  let native: typeof import('../../native/conntrack.js');
  let ct: ReturnType<typeof native.openConntrack> | undefined;
  try {
    native = await import('../../native/conntrack.js');
    ct = native.openConntrack();
  } catch (e) {
    if (!(e instanceof AwgError && e.kind === 'unsupported'))
      log(
        'warn',
        `no transparent UDP (UDP of the tunnel's apps is dropped): conntrack: ${(e as Error).message}`,
      );
    return undefined;
  }
  return {
    origin(p) {
      const e = native.redirectedUdpEntry((ct ??= native.openConntrack()), p);
      return e ? { host: e.orig.dst, port: e.orig.dport } : undefined;
    },
    close() {
      ct?.close();
      ct = undefined;
    },
  };
}

/** TEST-ONLY: `AWG_TEST_PROXY_UDP_IDLE_MS` (100…600000) replaces the UDP flows' 60 s idle timeout. */
function testUdpIdleMs(): number | undefined {
  const v = process.env.AWG_TEST_PROXY_UDP_IDLE_MS;
  const n = v && /^\d{3,6}$/.test(v) ? Number(v) : undefined;
  return n !== undefined && n <= 600_000 ? n : undefined;
}

/** Builds and starts the runtime of one proxy engine spec. Errors are AwgError('driver'). */
export async function startProxyRuntime(
  spec: ProxyEngineSpec,
  password: string | undefined,
  passwordFp: string,
  o: StartProxyOptions = {},
): Promise<StartedProxy> {
  const { ProxyTunnelRuntime } = await import('../../proxy/tunnel.js');
  const c = spec.config;
  const log = (level: 'debug' | 'info' | 'warn', m: string) =>
    o.log?.(level, `${spec.tunnel}: ${m}`);
  const rt = new ProxyTunnelRuntime({
    name: spec.tunnel,
    upstream: {
      type: spec.type,
      server: c.server,
      port: c.port,
      ...(c.auth ? { auth: { username: c.auth.username, password: password ?? '' } } : {}),
      ...(spec.type === 'socks5' ? { udp: c.udp ?? false } : { tls: c.tls ?? false }),
    },
    redirectPort: c.redirectPort,
    directPort: c.redirectPortDirect,
    dns: c.dns,
    dnsUdpPort: c.dns.length ? c.redirectPort : undefined,
    udpOrigin: await conntrackUdpOrigin(log),
    udpIdleMs: testUdpIdleMs(),
    ...(o.listenHost !== undefined ? { listenHost: o.listenHost } : {}),
    bypassMark: c.fwmark,
    ...(o.resolveServer ? { resolveServer: o.resolveServer } : {}),
    fallback: 'block',
  });
  rt.on('state', (ch) => {
    if (ch.to === 'unknown') return;
    log(
      ch.to === 'up' ? 'info' : 'warn',
      `proxy ${c.server}:${c.port} ${ch.to}${ch.error ? `: ${ch.error.message}` : ''}`,
    );
    o.onHealth?.({
      tunnel: spec.tunnel,
      state: ch.to,
      ...(ch.error ? { error: ch.error.message } : {}),
    });
  });
  rt.on('dial-error', (f) =>
    log('debug', `dial ${f.dst.host}:${f.dst.port} failed (${f.kind}): ${f.error.message}`),
  );
  rt.on('error', (e) => log('warn', e.message));
  try {
    await rt.start();
  } catch (e) {
    await rt.stop().catch(() => {});
    const err = e as NodeJS.ErrnoException;
    throw new AwgError(
      'driver',
      `engine ${spec.tunnel}: cannot listen for the transparent proxy on ports ${c.redirectPort}/${c.redirectPortDirect}: ${err.message}${err.code === 'EADDRINUSE' ? ' (routing.proxyPortBase moves the ports)' : ''}`,
      { cause: e },
    );
  }
  const on = rt.proxy
    .addresses()
    .map((a) => formatDst({ host: a.address, port: a.port }))
    .join(', ');
  log(
    'info',
    `transparent proxy on ${on} (strict) and port ${c.redirectPortDirect} (allow-direct) → ${spec.type} ${c.server}:${c.port}`,
  );
  return { spec, password, passwordFingerprint: passwordFp, runtime: rt };
}

function listening(p: StartedProxy): boolean {
  const rt = p.runtime;
  return (
    rt.proxy.address() !== undefined &&
    (rt.proxyDirect === undefined || rt.proxyDirect.address() !== undefined)
  );
}

export function proxyStatsRow(p: StartedProxy): ProxyTunnelStatsRow {
  const c = p.spec.config;
  const st = p.runtime.stats();
  const listeners = [st.tcp, ...(st.tcpDirect ? [st.tcpDirect] : [])];
  const dialErrors: Partial<Record<DialErrorKind, number>> = {};
  const connectionErrors: Record<string, number> = {};
  for (const l of listeners)
    for (const [k, n] of Object.entries(l.errors)) {
      if (k.startsWith('dial-')) {
        const kind = k.slice(5) as DialErrorKind;
        dialErrors[kind] = (dialErrors[kind] ?? 0) + (n ?? 0);
      } else connectionErrors[k] = (connectionErrors[k] ?? 0) + (n ?? 0);
    }
  const flows = [st.udpFlows?.strict, st.udpFlows?.direct].filter(
    (u): u is NonNullable<typeof u> => u !== undefined,
  );
  const relays = [...(st.dns?.relay ?? []), ...flows];
  const sum = (f: (r: (typeof relays)[number]) => number) => relays.reduce((n, r) => n + f(r), 0);
  const errors: Record<string, number> = {};
  for (const u of flows)
    for (const [k, n] of Object.entries(u.errors)) errors[k] = (errors[k] ?? 0) + (n ?? 0);
  const relay = relays.length
    ? {
        datagrams: {
          up: sum((r) => r.datagrams.up),
          down: sum((r) => r.datagrams.down),
          dropped: sum((r) => r.datagrams.dropped),
        },
        bytes: { up: sum((r) => r.bytes.up), down: sum((r) => r.bytes.down) },
        ...(flows.length
          ? {
              flows: {
                active: flows.reduce((n, u) => n + u.flows.active, 0),
                total: flows.reduce((n, u) => n + u.flows.total, 0),
                proxied: flows.reduce((n, u) => n + u.flows.proxied, 0),
                direct: flows.reduce((n, u) => n + u.flows.direct, 0),
              },
              errors,
            }
          : {}),
      }
    : undefined;
  const err = p.runtime.health.lastError;
  return {
    tunnel: p.spec.tunnel,
    type: p.spec.type,
    server: formatDst({ host: c.server, port: c.port }),
    health: st.health,
    ...(err && st.health !== 'up' ? { error: err.message } : {}),
    bytes: {
      up: listeners.reduce((s, l) => s + l.bytes.up, 0) + (relay?.bytes.up ?? 0),
      down: listeners.reduce((s, l) => s + l.bytes.down, 0) + (relay?.bytes.down ?? 0),
    },
    connections: {
      active: listeners.reduce((s, l) => s + l.connections.active, 0),
      total: listeners.reduce((s, l) => s + l.connections.total, 0),
    },
    dialErrors,
    connectionErrors,
    ...(relay ? { udp: relay } : {}),
    ...(st.dns ? { dns: st.dns.mode } : {}),
  };
}

// ---------------------------------------------------------------------------------------
// in the daemon

export interface InprocProxyHost {
  has(tunnel: string): boolean;
  tunnels(): string[];
  /** live runtimes, reported with the spec they run */
  observe(): Resource<'engine'>[];
  /**
   * create/replace/update: (re)start unless a live runtime already runs `after` (create)
   * or the change is a no-op; delete: stop. `stopDetached` stops an `awg engine` left by a
   * one-shot apply (it holds the ports).
   */
  apply(
    change: Change<'engine'>,
    ctx: ApplyContext,
    stopDetached: (spec: EngineSpec) => Promise<boolean>,
  ): Promise<ApplyResult>;
  /** start `spec` here (adoption of a detached engine, after it was stopped) */
  start(spec: ProxyEngineSpec, ctx: ApplyContext): Promise<void>;
  stop(tunnel: string, reason: string): Promise<boolean>;
  /** the upstream dialer of a running (listening) tunnel: the macOS flow router dials through it */
  upstream(tunnel: string): Runtime['upstream'] | undefined;
  stats(): ProxyTunnelStatsRow[];
  closeAll(): Promise<void>;
}

export function createInprocProxyHost(
  o: StartProxyOptions & {
    onStarted?: (tunnel: string) => void;
    onStopped?: (tunnel: string, reason: string) => void;
  },
): InprocProxyHost {
  const hosted = new Map<string, StartedProxy>();

  async function stop(tunnel: string, reason: string): Promise<boolean> {
    const p = hosted.get(tunnel);
    if (!p) return false;
    hosted.delete(tunnel);
    await p.runtime.stop().catch(() => {});
    o.onStopped?.(tunnel, reason);
    return true;
  }

  async function start(spec: ProxyEngineSpec, ctx: ApplyContext): Promise<void> {
    const password = proxyPasswordFor(spec, ctx.secrets);
    try {
      const r = engineResolver(endpointResolverFor(ctx.state));
      hosted.set(
        spec.tunnel,
        await startProxyRuntime(
          spec,
          password,
          passwordFingerprint(spec, password, fingerprintKeyOf(ctx.state)),
          { ...o, resolveServer: (h) => r.resolve(h, { mark: spec.config.fwmark }) },
        ),
      );
    } catch (e) {
      throw toAwgError(e, 'driver');
    }
    o.onStarted?.(spec.tunnel);
  }

  function live(tunnel: string): StartedProxy | undefined {
    const p = hosted.get(tunnel);
    return p && listening(p) ? p : undefined;
  }

  return {
    has: (t) => hosted.has(t),
    tunnels: () => [...hosted.keys()],
    upstream: (t) => live(t)?.runtime.upstream,
    observe() {
      const out: Resource<'engine'>[] = [];
      for (const [tunnel, p] of hosted) {
        if (!listening(p)) continue;
        out.push({
          kind: 'engine',
          id: ids.engine(tunnel),
          spec: liveSpecOf(p.spec, p.passwordFingerprint),
          deps: [],
        });
      }
      return out;
    },
    async apply(change, ctx, stopDetached) {
      const spec = change.after ?? change.before!;
      if (!isProxyEngine(spec))
        throw new AwgError('bug', `engine ${spec.tunnel}: ${spec.type} is not a proxy engine`);
      const tunnel = spec.tunnel;
      switch (change.action) {
        case 'noop':
          return 'unchanged';
        case 'delete': {
          if (!ctx.exec.record(`[engine] stop proxy ${tunnel}`)) return 'changed';
          const a = await stop(tunnel, 'deleted');
          const b = await stopDetached(spec);
          return a || b ? 'changed' : 'unchanged';
        }
        case 'create':
        case 'replace':
        case 'update': {
          // create/replace/update carry `after`: it is `spec`
          const after = spec;
          const p = live(tunnel);
          if (
            change.action === 'create' &&
            p &&
            specEqual(
              liveSpecOf(p.spec, p.passwordFingerprint),
              liveSpecOf(
                after,
                passwordFingerprint(
                  after,
                  proxyPasswordFor(after, ctx.secrets),
                  fingerprintKeyOf(ctx.state),
                ),
              ),
            )
          )
            return 'unchanged';
          const c = after.config;
          if (
            !ctx.exec.record(
              `[engine] start proxy ${tunnel} in-process: :${c.redirectPort}/:${c.redirectPortDirect} → ${after.type} ${c.server}:${c.port}`,
            )
          )
            return 'changed';
          await stop(
            tunnel,
            change.action === 'update' ? 'restarting with the new configuration' : 'replaced',
          );
          await stopDetached(after);
          await start(after, ctx);
          return 'changed';
        }
      }
    },
    start,
    stop,
    stats: () => [...hosted.values()].map(proxyStatsRow),
    async closeAll() {
      for (const t of [...hosted.keys()]) await stop(t, 'daemon stopping');
    },
  };
}
