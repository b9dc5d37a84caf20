/**
 * Wake sources of the daemon loop: the config file (chokidar), the platform's network
 * monitor (rtnetlink and nf_tables notifications on Linux: resources/monitor/) and its system
 * services (Linux: the system bus, resources/monitor/system-bus.ts). They only say "something
 * changed"; the loop re-observes (and debounces all but the config's).
 *
 * System events wake as `system` with the event as detail: resolved started (runtime
 * per-link settings may be gone), NetworkManager reconfigured, resume. Resolved's own
 * settings-changed signal is ignored while our changes may still echo (`isEcho`), as the
 * network monitor ignores our rtnetlink echoes; outside that window it is drift.
 *
 * The config file's directory is watched, not the file: editors that save by rename and
 * git checkouts replace the inode, which a watch on the file itself would lose. An in-place
 * save truncates the file before it writes it: a wake on the truncation would read an empty
 * or half-written config and report it invalid, so a change wakes only once the file's size
 * has held still for `settleMs` (chokidar's awaitWriteFinish).
 *
 * A directory that does not exist yet (the packaged unit's /etc/awg before the user makes it)
 * cannot be watched: chokidar never sees it appear. Its nearest existing ancestor is watched
 * instead; when a directory on the way appears the watch is set up again one level deeper,
 * and a file already there by then wakes as added.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { DaemonEvent, WakeReason } from './core.js';
import type {
  NetworkWatch,
  NetworkWatchOptions,
  SystemEvent,
  SystemWatch,
  SystemWatchOptions,
} from '../resources/monitor/types.js';

export interface WakeSourceOptions {
  configPath?: string | undefined;
  /** `firewall`, `shaper`: a network wake for our nft table or traffic control alone (NetworkWatchOptions.onChange) */
  onWake(
    reason: Extract<WakeReason, 'config' | 'network' | 'system'>,
    detail: string,
    what?: 'network' | 'firewall' | 'shaper' | SystemEvent['kind'],
  ): void;
  /** true while our own changes may still echo */
  isEcho(): boolean;
  /** our link prefix, route protocol and nft table (they follow the current config) */
  claims(): { linkPrefix: string; routeProtocol: number; nftTable: string };
  /** the platform's network monitor (Platform.watchNetwork); absent: no network wakes */
  watchNetwork?: (o: NetworkWatchOptions) => Promise<NetworkWatch>;
  /** the platform's system-service watch (Platform.watchSystem); absent: no system wakes */
  watchSystem?: (o: SystemWatchOptions) => Promise<SystemWatch>;
  /** config file watcher (default on) */
  watchConfig?: boolean;
  /** open the monitor in this network namespace (name or path) */
  netns?: string;
  /** a config change wakes once the file's size held still this long (default 150 ms) */
  settleMs?: number;
}

const SETTLE_MS = 150;

export interface WakeSources {
  /** watch these files (the config and the overlay files it applies); none: no config watch */
  setConfigFiles(paths: readonly string[]): void;
  close(): Promise<void>;
}

export interface DaemonWakeOptions extends Omit<
  WakeSourceOptions,
  'onWake' | 'watchNetwork' | 'watchSystem'
> {
  /** the platform's network monitor and system-service watch (undefined: none) */
  platform: Pick<WakeSourceOptions, 'watchNetwork' | 'watchSystem'> | undefined;
  env: NodeJS.ProcessEnv;
  /** the tunnels' engines start a handshake after the run (tunnels.ts networkMoved) */
  networkMoved(): void;
  emit(e: DaemonEvent): void;
  wake(reason: WakeReason): void;
}

/**
 * The daemon's wake sources: the platform's watches (no system-bus watch with
 * AWG_SYSTEM_BUS=0: the drift timer still re-checks), and what a network or system wake does
 * besides waking the loop: a `network-changed` event, and the engines re-handshake after an
 * underlay change or a resume.
 */
export function startDaemonWakes(o: DaemonWakeOptions): Promise<WakeSources> {
  const { platform, env, networkMoved, emit, wake, ...rest } = o;
  const at = () => new Date().toISOString();
  return startWakeSources({
    ...rest,
    ...(platform?.watchNetwork ? { watchNetwork: platform.watchNetwork } : {}),
    ...(platform?.watchSystem && env.AWG_SYSTEM_BUS !== '0'
      ? { watchSystem: platform.watchSystem }
      : {}),
    onWake: (reason, detail, what) => {
      if (reason === 'network') {
        // the engines re-handshake after an underlay change, not after our table's or a qdisc's
        if (what !== 'firewall' && what !== 'shaper') networkMoved();
        emit({ type: 'network-changed', at: at(), detail });
      }
      if (reason === 'system') {
        // after resume every peer's session may be stale (NAT bindings expired while asleep):
        // each WireGuard tunnel starts a handshake after the run
        if (what === 'resume') networkMoved();
        emit({ type: 'network-changed', at: at(), detail });
      }
      wake(reason);
    },
  });
}

export async function startWakeSources(o: WakeSourceOptions): Promise<WakeSources> {
  const closers: (() => Promise<void> | void)[] = [];
  let watcher: { close(): Promise<void> } | undefined;
  let targets = new Set<string>();

  async function watchConfig(paths: readonly string[]): Promise<void> {
    await watcher?.close();
    watcher = undefined;
    targets = new Set(paths.map((p) => resolve(p)));
    if (targets.size === 0 || o.watchConfig === false) return;
    const { watch } = await import('chokidar');
    const files = targets;
    const dirs = [...new Set([...files].map((t) => existingAncestor(dirname(t))))];
    // the directories still missing on the way to a file: one appearing re-arms the watch
    const awaited = new Set(
      [...files].flatMap((t) => missingDirs(dirname(t))).filter((d) => dirs.includes(dirname(d))),
    );
    const w = watch(dirs, {
      depth: 0,
      ignoreInitial: true,
      atomic: true,
      awaitWriteFinish: { stabilityThreshold: o.settleMs ?? SETTLE_MS, pollInterval: 25 },
      ignored: (p: string) => !dirs.includes(p) && !files.has(resolve(p)) && !awaited.has(p),
    });
    const fire = (p: string) => {
      if (files.has(resolve(p))) o.onWake('config', `${basename(p)} changed`);
    };
    w.on('add', fire).on('change', fire).on('unlink', fire);
    w.on('addDir', (p: string) => {
      if (!awaited.has(p) || files !== targets) return;
      void watchConfig([...files]).then(() => {
        for (const f of files) if (existsSync(f)) fire(f);
      });
    });
    w.on('error', () => {});
    await new Promise<void>((res) => w.once('ready', () => res()));
    // a newer call replaced the set while chokidar got ready: this watcher is stale
    if (files !== targets) {
      await w.close();
      return;
    }
    watcher = w;
  }
  await watchConfig(o.configPath ? [o.configPath] : []);
  closers.push(() => watcher?.close());

  if (o.watchNetwork) {
    const w = await o.watchNetwork({
      onChange: (d, what) => o.onWake('network', d, what),
      isEcho: o.isEcho,
      claims: o.claims,
      ...(o.netns ? { netns: o.netns } : {}),
    });
    closers.push(() => w.close());
  }

  if (o.watchSystem) {
    const w = await o.watchSystem({
      onEvent: (e) => {
        if (e.kind === 'resolved-changed' && o.isEcho()) return;
        o.onWake('system', e.detail, e.kind);
      },
    });
    closers.push(() => w.close());
  }

  return {
    setConfigFiles(paths) {
      const next = paths.map((p) => resolve(p));
      if (next.length === targets.size && next.every((p) => targets.has(p))) return;
      void watchConfig(next);
    },
    async close() {
      for (const c of closers.reverse()) await c();
    },
  };
}

/** `dir`, or its nearest ancestor that exists */
function existingAncestor(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** the directories of `dir`'s path that do not exist, outermost first */
function missingDirs(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) out.unshift(d);
  return out;
}
