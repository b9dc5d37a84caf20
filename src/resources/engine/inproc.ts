/**
 * Engine driver for the daemon: WireGuard/AmneziaWG devices hosted in this process, each
 * attached to its persistent TUN with a marked UDP bind and a UAPI socket (so `wg show`
 * works). Same contract as process-host.ts:
 * - observe: the devices alive in this process (TUN still attached), reported with the spec
 *   we configured, private key, peers and allowed IPs read back from the device (extra ones
 *   included: live-spec.ts); plus engines still
 *   served by a detached `awg engine` (left by `awg apply`), so the plan never starts a
 *   second engine on a TUN that is in use.
 * - create/replace: stop whatever serves the tunnel (detached process or device), start a
 *   device with the full configuration.
 * - update: a UAPI delta (`deltaSetText`) on the live device: sessions of peers that stay
 *   are kept. A tunnel still served by a detached process is migrated (stop, start here).
 * - delete: close the device / stop the detached process.
 * Adoption (`adopt`): engines left by `awg apply` whose spec equals the desired one are
 * moved into this process before the first reconcile, so that reconcile plans no change.
 * Sessions do not survive the move (keys live in the old process); the next packet
 * handshakes again (one round trip).
 */
import { join } from 'node:path';
import { AwgError, toAwgError } from '../../errors.js';
import { fingerprint } from '../../config/fingerprint.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import {
  isProxyEngine,
  type DesiredState,
  type EngineSpec,
  type Resource,
  type WgEngineSpec,
} from '../../model/resources.js';
import { formatEndpoint } from '../../dataplane/conn/bind.js';
import { formatRange } from '../../dataplane/awg/range.js';
import { createEngine, type Engine, type EngineIo } from '../../dataplane/engine.js';
import { setCryptoPoolLog } from '../../dataplane/crypto/pool.js';
import type { Underlay } from '../../dataplane/conn/pin.js';
import type { Dialer } from '../../proxy/types.js';
import { loadPlatform } from '../registry.js';
import { recordUtun } from '../../platform/darwin/utun.js';
import { specEqual } from '../../util/canonical.js';
import type { StateStore } from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  createProcessEngineDriver,
  daemonEngineRecord,
  secretsFor,
  UAPI_DIR_DEFAULT,
  type EngineRecord,
  type ProcessHostOptions,
} from './process-host.js';
import { deltaSetText, fullSetText } from './uapi-config.js';
import { liveKeepalive, liveWgSpec } from './live-spec.js';
import { createExternalEngineHost } from './external-host.js';
import { sendLinkProbe } from './link-probe.js';
import { engineDriver } from './hosts.js';
import { createKernelEngineDriver } from './kernel-host.js';
import { createInprocProxyHost, type ProxyTunnelStatsRow } from './proxy-host.js';
import { endpointResolverFor, engineResolver } from '../endpoints.js';
import type { EngineStats } from './stats.js';

export type { EngineIo } from '../../dataplane/engine.js';
export type { Underlay } from '../../dataplane/conn/pin.js';

export type EngineChange =
  | { type: 'handshake'; tunnel: string; peer: string; initiator: boolean }
  | { type: 'handshake-failed'; tunnel: string; peer: string }
  | { type: 'endpoint'; tunnel: string; peer: string; endpoint: string }
  | { type: 'started'; tunnel: string }
  | { type: 'stopped'; tunnel: string; reason: string }
  /** proxy tunnels: the upstream's health changed (auth-failed: wrong credentials, terminal) */
  | { type: 'health'; tunnel: string; state: 'up' | 'down' | 'auth-failed'; error?: string };

export type { EngineStats, PeerStats } from './stats.js';

export interface InprocOptions {
  env?: NodeJS.ProcessEnv | undefined;
  io?: EngineIo;
  /** UAPI sockets (default on; tests of the driver logic turn them off) */
  uapi?: boolean;
  log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
  /** for the detached engines this driver adopts or stops */
  processHost?: ProcessHostOptions;
}

interface Hosted {
  spec: WgEngineSpec;
  engine: Engine;
}

const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');

export interface InprocEngineHost {
  readonly driver: Driver<'engine'>;
  /** move engines left by `awg apply` whose spec equals the desired one into this process */
  adopt(desired: DesiredState, ctx: ApplyContext): Promise<string[]>;
  stats(): EngineStats[];
  /** proxy tunnels (socks5/http) hosted here: health, bytes, connections, dial errors */
  proxyStats(): ProxyTunnelStatsRow[];
  /** a running proxy tunnel's upstream dialer (the macOS flow router's route into it) */
  proxyDialer?(tunnel: string): Dialer | undefined;
  onChange(listener: (c: EngineChange) => void): () => void;
  /**
   * Start a handshake with every peer that has an endpoint and no session (health probing of a
   * tunnel that is not up: without traffic the engine would not try again once it gave up),
   * or with `peer` (base64 key) even while a session exists (a silent peer: is it still there?).
   * `data`: a data message the peer answers instead, on sessions only (is a dead data path
   * back?), from `from` (the tunnel's address: the peer's kernel answers at once, send.ts
   * sendDataProbe); an external engine's (with `from`): a datagram through its link
   * (link-probe.ts), to whichever peer routes TEST-NET.
   */
  probe(tunnel: string, opts?: { peer?: string; data?: boolean; from?: string }): void;
  /** after an underlay change: re-resolve hostname endpoints and send a keepalive on live sessions, so peers learn a new source address at once */
  kick(): void;
  /**
   * The physical network as the last run probed it (facts' default routes): the engines'
   * sockets leave there (macOS: pinned, EngineIo.setUnderlay); kept for engines started later.
   */
  setUnderlay?(u: Underlay): void;
  /** close every device (daemon stop); the TUNs stay */
  closeAll(): Promise<void>;
  tunnels(): string[];
}

export function createInprocEngineHost(opts: InprocOptions = {}): InprocEngineHost {
  const env = opts.env ?? process.env;
  const uapiDir = () => env.AWG_UAPI_DIR || UAPI_DIR_DEFAULT;
  const hosted = new Map<string, Hosted>();
  const listeners = new Set<(c: EngineChange) => void>();
  const processHost = createProcessEngineDriver({ env, ...opts.processHost });
  const proxies = createInprocProxyHost({
    log: opts.log,
    onHealth: (h) => emit({ type: 'health', ...h }),
    onStarted: (tunnel) => emit({ type: 'started', tunnel }),
    onStopped: (tunnel, reason) => {
      forget(tunnel);
      emit({ type: 'stopped', tunnel, reason });
    },
  });
  /**
   * Every engine hosted here has a record in the state directory (process-host.ts
   * EngineRecord, `host: 'daemon'`), so a direct-mode observation (`awg status --direct`)
   * sees it; this process's own records are never observed through it (the devices and
   * runtimes here are the truth), and are forgotten when the engine stops.
   */
  const recorded = new Map<string, StateStore>();
  const remember = (state: StateStore, spec: EngineSpec, uapiPath: string) => {
    state.set<EngineRecord>(`engine-${spec.tunnel}`, daemonEngineRecord(spec, uapiPath));
    recorded.set(spec.tunnel, state);
  };
  function forget(tunnel: string): void {
    const state = recorded.get(tunnel);
    if (!state) return;
    recorded.delete(tunnel);
    const rec = state.get<EngineRecord>(`engine-${tunnel}`);
    if (rec?.host === 'daemon' && rec.pid === process.pid) state.delete(`engine-${tunnel}`);
  }
  const ownRecord = (state: StateStore, tunnel: string) =>
    state.get<EngineRecord>(`engine-${tunnel}`)?.host === 'daemon';
  const recordedUapi = (state: StateStore, tunnel: string) =>
    state.get<EngineRecord>(`engine-${tunnel}`)?.uapiPath ?? '';
  let io: EngineIo | undefined = opts.io;
  let underlay: Underlay | undefined;
  const emit = (c: EngineChange) => {
    for (const l of listeners) {
      try {
        l(c);
      } catch {
        /* a listener never breaks the engine */
      }
    }
  };

  const attached = (h: Hosted): boolean => h.engine.attached();

  /** the configured spec corrected by the device: extra peers / allowed IPs are drift */
  function liveSpec(h: Hosted, fingerprintKey: Uint8Array): WgEngineSpec {
    const snap = h.engine.device.snapshot();
    return liveWgSpec(h.spec, {
      privateKey: snap.privateKey ? fingerprint(b64(snap.privateKey), fingerprintKey) : 'none',
      fwmark: snap.fwmark,
      peers: snap.peers.map((p) => ({
        publicKey: b64(p.publicKey),
        allowedIPs: p.allowedIps,
        endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
        persistentKeepalive: liveKeepalive(formatRange(p.persistentKeepalive)),
      })),
    });
  }

  async function stopHosted(tunnel: string, reason: string): Promise<boolean> {
    const h = hosted.get(tunnel);
    if (!h) return false;
    hosted.delete(tunnel);
    forget(tunnel);
    await h.engine.close();
    emit({ type: 'stopped', tunnel, reason });
    return true;
  }

  async function stopDetached(spec: EngineSpec, ctx: ApplyContext): Promise<boolean> {
    const rec = ctx.state.get<EngineRecord>(`engine-${spec.tunnel}`);
    if (!rec) return false;
    await processHost.apply(
      {
        kind: 'engine',
        id: ids.engine(spec.tunnel),
        action: 'delete',
        before: rec.spec,
        reason: 'moved into the daemon',
        cause: 'drift',
      },
      ctx,
    );
    return true;
  }

  async function start(spec: WgEngineSpec, ctx: ApplyContext): Promise<void> {
    const tunnel = spec.tunnel;
    const link = spec.link;
    const text = fullSetText(spec, secretsFor(tunnel, spec, ctx.secrets));
    const uapiPath = join(uapiDir(), `${link}.sock`);
    if (!io) {
      io = await (await loadPlatform()).engineIo({ log: (m) => opts.log?.('warn', m) });
      if (underlay) io.setUnderlay?.(underlay);
      // the daemon's engines share the process's crypto pool: it says when its threads start or stop
      setCryptoPoolLog((level, message) => opts.log?.(level, message));
    }
    const log = (level: 'debug' | 'info' | 'warn', message: string) =>
      opts.log?.(level, `${tunnel}: ${message}`);
    let engine: Engine;
    try {
      // host-name endpoints: the daemon's resolver (last good answers, bypass-marked lookups)
      engine = createEngine(link, io, {
        log,
        resolver: engineResolver(endpointResolverFor(ctx.state)),
      });
      // where the kernel names the TUN itself (a macOS utun), the drivers find it by the link
      if (engine.tun.name !== link && !ctx.dryRun)
        recordUtun(ctx.state, link, { ifname: engine.tun.name, pid: process.pid });
    } catch (e) {
      throw toAwgError(e, 'driver');
    }
    const h: Hosted = { spec, engine };
    const device = engine.device;
    const peerOf = (k: Uint8Array) => b64(k);
    device.on('handshake', (e) =>
      emit({ type: 'handshake', tunnel, peer: peerOf(e.publicKey), initiator: e.initiator }),
    );
    device.on('handshake-failed', (e) =>
      emit({ type: 'handshake-failed', tunnel, peer: peerOf(e.publicKey) }),
    );
    device.on('endpoint', (e) =>
      emit({
        type: 'endpoint',
        tunnel,
        peer: peerOf(e.publicKey),
        endpoint: formatEndpoint(e.endpoint),
      }),
    );
    engine.onTunError((e) => {
      if (hosted.get(tunnel) === h) void stopHosted(tunnel, `tun: ${e.message}`);
    });
    try {
      await engine.start(text, opts.uapi !== false ? { uapiPath } : {});
    } catch (e) {
      throw toAwgError(e, 'driver');
    }
    hosted.set(tunnel, h);
    remember(ctx.state, spec, opts.uapi !== false ? uapiPath : '');
    emit({ type: 'started', tunnel });
  }

  const embedded: Driver<'engine'> = {
    kind: 'engine',
    async observe(scope: ObserveScope): Promise<ObserveResult<'engine'>> {
      const resources: Resource<'engine'>[] = [];
      for (const [tunnel, h] of [...hosted]) {
        if (!attached(h)) {
          await stopHosted(tunnel, 'the TUN is gone or the device stopped');
          continue;
        }
        resources.push({
          kind: 'engine',
          id: ids.engine(tunnel),
          spec: liveSpec(h, fingerprintKeyOf(scope.state)),
          deps: [],
        });
      }
      const detached = await processHost.observe(scope);
      resources.push(...proxies.observe());
      // records of daemons (ours, or another's in the same state directory) are not detached engines
      for (const r of detached.resources)
        if (
          !hosted.has(r.spec.tunnel) &&
          !proxies.has(r.spec.tunnel) &&
          !ownRecord(scope.state, r.spec.tunnel)
        )
          resources.push(r);
      return { resources, foreign: [] };
    },
    async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
      const spec = change.after ?? change.before!;
      // a replace may change the family (WireGuard ↔ proxy): the other family's runtime of
      // this tunnel stops first, or it would keep its TUN / ports beside the new one
      const otherFamily = isProxyEngine(spec) ? hosted.has(spec.tunnel) : proxies.has(spec.tunnel);
      if (
        change.action === 'replace' &&
        otherFamily &&
        ctx.exec.record(`[engine] stop ${spec.tunnel} (its type changes to ${spec.type})`)
      ) {
        if (isProxyEngine(spec)) await stopHosted(spec.tunnel, 'replaced');
        else await proxies.stop(spec.tunnel, 'replaced');
      }
      if (isProxyEngine(spec)) {
        const r = await proxies.apply(change, ctx, (s) => stopDetached(s, ctx));
        if (change.action !== 'delete' && proxies.has(spec.tunnel)) remember(ctx.state, spec, '');
        return r;
      }
      // create/replace/update carry `after`: from here on it is `spec`
      const tunnel = spec.tunnel;
      switch (change.action) {
        case 'noop':
          return 'unchanged';
        case 'delete': {
          if (!ctx.exec.record(`[engine] stop ${tunnel}`)) return 'changed';
          const a = await stopHosted(tunnel, 'deleted');
          const b = await stopDetached(spec, ctx);
          return a || b ? 'changed' : 'unchanged';
        }
        case 'create':
        case 'replace': {
          const h = hosted.get(tunnel);
          if (change.action === 'create' && h && attached(h) && specEqual(h.spec, spec))
            return 'unchanged';
          if (!ctx.exec.record(`[engine] start ${tunnel} in-process on ${spec.link}`))
            return 'changed';
          await stopHosted(tunnel, 'replaced');
          await stopDetached(spec, ctx);
          await start(spec, ctx);
          return 'changed';
        }
        case 'update': {
          const h = hosted.get(tunnel);
          if (!h || !attached(h)) {
            if (!ctx.exec.record(`[engine] start ${tunnel} in-process on ${spec.link}`))
              return 'changed';
            await stopHosted(tunnel, 'restarting');
            await stopDetached(spec, ctx);
            await start(spec, ctx);
            return 'changed';
          }
          // a type change plans a replace: an update's `before` is of the same family
          const before = change.before!;
          if (isProxyEngine(before))
            throw new AwgError(
              'bug',
              `engine ${tunnel}: update from ${before.type} to ${spec.type}`,
            );
          const text = deltaSetText(before, spec, secretsFor(tunnel, spec, ctx.secrets));
          if (
            ctx.exec.record(
              `[engine] uapi set ${tunnel} (${change.fields?.join(', ') ?? 'config'})`,
            )
          ) {
            try {
              await h.engine.device.ipcSet(text);
            } catch (e) {
              throw toAwgError(e, 'driver');
            }
            h.spec = spec;
            remember(ctx.state, spec, recordedUapi(ctx.state, tunnel));
          }
          return 'changed';
        }
      }
    },
  };

  function embeddedStats(): EngineStats[] {
    return [...hosted.values()].map((h) => {
      return {
        tunnel: h.spec.tunnel,
        type: h.spec.type,
        link: h.spec.link ?? '',
        up: attached(h),
        peers: h.engine.device.peerSummaries().map((p) => ({
          publicKey: b64(p.publicKey),
          ...(p.endpoint ? { endpoint: formatEndpoint(p.endpoint) } : {}),
          lastHandshakeMs: p.lastHandshakeTime,
          rxBytes: p.rxBytes,
          txBytes: p.txBytes,
          handshakePendingMs: p.handshakePendingMs,
          hasSession: p.hasSession,
          dataUnansweredMs: p.dataUnansweredMs,
          lastRxKeepalive: p.lastRxKeepalive,
        })),
      };
    });
  }

  // external programs run as the daemon's watched children; the kernel's engines as anywhere
  const external = createExternalEngineHost({
    env,
    supervise: (tunnel, reason) => emit({ type: 'stopped', tunnel, reason }),
  });
  const driver = engineDriver({
    embedded,
    kernel: createKernelEngineDriver(),
    external: external.driver,
  });

  return {
    driver,
    async adopt(desired, ctx) {
      const moved: string[] = [];
      // external engines left by `awg apply` stay where they run: the daemon only watches them
      await external.adopt(ctx.state);
      const want = new Map(
        desired.resources
          .filter((r): r is Resource<'engine'> => r.kind === 'engine')
          .map((r) => [r.spec.tunnel, r.spec]),
      );
      const detached = await processHost.observe({ desired, claims: ctx.claims, state: ctx.state });
      for (const r of detached.resources) {
        const spec = want.get(r.spec.tunnel);
        if (
          !spec ||
          hosted.has(spec.tunnel) ||
          proxies.has(spec.tunnel) ||
          ownRecord(ctx.state, spec.tunnel) ||
          !specEqual(r.spec, spec)
        )
          continue;
        if (
          !ctx.exec.record(
            `[engine] adopt ${spec.tunnel}: move it from the detached awg engine into the daemon`,
          )
        )
          continue;
        await stopDetached(r.spec, ctx);
        if (isProxyEngine(spec)) {
          await proxies.start(spec, ctx);
          remember(ctx.state, spec, '');
        } else await start(spec, ctx);
        moved.push(spec.tunnel);
      }
      return moved;
    },
    stats() {
      return [...embeddedStats(), ...external.stats()];
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    probe(tunnel, opts = {}) {
      const device = hosted.get(tunnel)?.engine.device;
      if (!device) {
        // an external engine: the data probe through its link (handshakes are its own)
        const link = opts.data && opts.from ? external.linkOf(tunnel) : undefined;
        if (link) sendLinkProbe(link, opts.from!);
        return;
      }
      if (device.state !== 'up') return;
      for (const ps of device.peerSummaries()) {
        if (!ps.endpoint) continue;
        if (opts.data) {
          if (opts.peer === undefined || b64(ps.publicKey) === opts.peer)
            device.probePeer(ps.publicKey, true, opts.from);
          continue;
        }
        if (opts.peer !== undefined ? b64(ps.publicKey) !== opts.peer : ps.hasSession) continue;
        device.probePeer(ps.publicKey);
      }
    },
    kick() {
      for (const { engine } of hosted.values()) {
        if (engine.device.state !== 'up') continue;
        for (const ps of engine.device.peerSummaries()) {
          try {
            engine.device.kickPeer(ps.publicKey);
          } catch {
            /* best effort */
          }
        }
      }
    },
    setUnderlay(u) {
      underlay = u;
      io?.setUnderlay?.(u);
    },
    proxyStats: () => proxies.stats(),
    proxyDialer: (t) => proxies.upstream(t),
    async closeAll() {
      await proxies.closeAll();
      for (const t of [...hosted.keys()]) await stopHosted(t, 'daemon stopping');
      await external.closeAll();
    },
    tunnels: () => [...hosted.keys(), ...proxies.tunnels(), ...external.tunnels()],
  };
}
