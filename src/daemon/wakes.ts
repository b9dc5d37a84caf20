/**
 * Wake sources of the daemon loop: the config file (chokidar) and the platform's network
 * monitor (rtnetlink on Linux: resources/monitor/). They only say "something changed"; the
 * loop re-observes.
 *
 * The config file's directory is watched, not the file: editors that save by rename and
 * git checkouts replace the inode, which a watch on the file itself would lose.
 */
import { basename, dirname, resolve } from 'node:path';
import type { WakeReason } from './core.js';
import type { NetworkWatch, NetworkWatchOptions } from '../resources/monitor/types.js';

export interface WakeSourceOptions {
  configPath?: string;
  onWake(reason: Extract<WakeReason, 'config' | 'network'>, detail: string): void;
  /** true while our own changes may still echo */
  isEcho(): boolean;
  /** our link prefix and route protocol (they follow the current config) */
  claims(): { linkPrefix: string; routeProtocol: number };
  /** the platform's network monitor (Platform.watchNetwork); absent: no network wakes */
  watchNetwork?: (o: NetworkWatchOptions) => Promise<NetworkWatch>;
  /** config file watcher (default on) */
  watchConfig?: boolean;
  /** open the monitor in this network namespace (name or path) */
  netns?: string;
}

export interface WakeSources {
  setConfigPath(path: string | undefined): void;
  close(): Promise<void>;
}

export async function startWakeSources(o: WakeSourceOptions): Promise<WakeSources> {
  const closers: (() => Promise<void> | void)[] = [];
  let watcher: { close(): Promise<void> } | undefined;
  let target: string | undefined;

  async function watchConfig(path: string | undefined): Promise<void> {
    await watcher?.close();
    watcher = undefined;
    target = path ? resolve(path) : undefined;
    if (!target || o.watchConfig === false) return;
    const { watch } = await import('chokidar');
    const dir = dirname(target);
    const file = target;
    const w = watch(dir, {
      depth: 0,
      ignoreInitial: true,
      atomic: true,
      ignored: (p: string) => p !== dir && resolve(p) !== file,
    });
    const fire = (p: string) => {
      if (resolve(p) === target) o.onWake('config', `${basename(p)} changed`);
    };
    w.on('add', fire).on('change', fire).on('unlink', fire);
    w.on('error', () => {});
    await new Promise<void>((res) => w.once('ready', () => res()));
    watcher = w;
  }
  await watchConfig(o.configPath);
  closers.push(() => watcher?.close());

  if (o.watchNetwork) {
    const w = await o.watchNetwork({ onChange: (d) => o.onWake('network', d), isEcho: o.isEcho, claims: o.claims, ...(o.netns ? { netns: o.netns } : {}) });
    closers.push(() => w.close());
  }

  return {
    setConfigPath(path) {
      if ((path ? resolve(path) : undefined) === target) return;
      void watchConfig(path);
    },
    async close() {
      for (const c of closers.reverse()) await c();
    },
  };
}
