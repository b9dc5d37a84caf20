/**
 * Wake sources of the daemon loop: the config file (chokidar) and rtnetlink (link,
 * address and route groups). They only say "something changed"; the loop re-observes.
 *
 * The config file's directory is watched, not the file: editors that save by rename and
 * git checkouts replace the inode, which a watch on the file itself would lose.
 *
 * Our own changes echo back as rtnetlink events. While a run is in flight and shortly
 * after (`isEcho`), events on our links (except an admin-down), routes with our protocol and
 * kernel noise on our links (IPv6 link-local, local table) are ignored. Outside that window every event wakes
 * the loop, ours included: someone deleting our route is drift. Link events always count
 * (outside the window): an admin-down link loses its IPv4 routes without RTM_DELROUTE.
 */
import { basename, dirname, resolve } from 'node:path';
import type { WakeReason } from './core.js';
import type { RtnlEvent } from '../native/rtnl.js';

export interface WakeSourceOptions {
  configPath?: string;
  onWake(reason: Extract<WakeReason, 'config' | 'network'>, detail: string): void;
  /** true while our own changes may still echo */
  isEcho(): boolean;
  /** our link prefix and route protocol (they follow the current config) */
  claims(): { linkPrefix: string; routeProtocol: number };
  /** rtnetlink monitor (default: on Linux) */
  netlink?: boolean;
  /** config file watcher (default on) */
  watchConfig?: boolean;
  /** open the monitor in this network namespace (name or path) */
  netns?: string;
}

export interface WakeSources {
  setConfigPath(path: string | undefined): void;
  close(): Promise<void>;
}

export interface RtnlFilterState {
  /** ifindex → name, learnt from link events */
  names: Map<number, string>;
}

const LOCAL_TABLE = 255;

function describe(e: RtnlEvent, names: Map<number, string>): string {
  switch (e.type) {
    case 'resync':
      return 'netlink events lost: full re-observation';
    case 'newlink':
    case 'dellink':
      return `${e.type} ${e.ifname ?? names.get(e.ifindex) ?? `#${e.ifindex}`}${e.type === 'newlink' ? ((e.flags & 1) === 1 ? ' up' : ' down') : ''}`;
    case 'newaddr':
    case 'deladdr':
      return `${e.type} ${e.address ?? '?'}/${e.prefixlen} dev ${names.get(e.ifindex) ?? `#${e.ifindex}`}`;
    case 'newroute':
    case 'delroute':
      return `${e.type} ${e.dst} table ${e.table}${e.ifindex ? ` dev ${names.get(e.ifindex) ?? `#${e.ifindex}`}` : ''}`;
  }
}

/**
 * Which events of a batch wake the loop. Pure apart from learning link names into `st`.
 * Returns a description of the first waking event, or undefined.
 */
export function wakingEvent(events: RtnlEvent[], st: RtnlFilterState, o: { echo: boolean; linkPrefix: string; routeProtocol?: number }): string | undefined {
  let first: string | undefined;
  for (const e of events) {
    if ((e.type === 'newlink' || e.type === 'dellink') && e.ifname) st.names.set(e.ifindex, e.ifname);
    if (e.type === 'resync') {
      first ??= describe(e, st.names);
      continue;
    }
    const name = st.names.get(e.ifindex) ?? (e.type === 'newlink' || e.type === 'dellink' ? e.ifname : undefined);
    const ours = name !== undefined && name.startsWith(o.linkPrefix);
    // kernel noise on our own links: IPv6 link-local addresses and local-table routes
    if (ours && (e.type === 'newaddr' || e.type === 'deladdr') && e.address?.toLowerCase().startsWith('fe80')) continue;
    if (ours && (e.type === 'newroute' || e.type === 'delroute') && (e.table === LOCAL_TABLE || e.dst.toLowerCase().startsWith('fe80') || e.dst.toLowerCase().startsWith('ff00'))) continue;
    if (o.echo) {
      // an admin-down of our link always counts: its IPv4 routes are gone without events
      const adminDown = e.type === 'newlink' && (e.flags & 1) === 0;
      if (ours && !adminDown) continue;
      if ((e.type === 'newroute' || e.type === 'delroute') && o.routeProtocol !== undefined && e.protocol === o.routeProtocol) continue;
    }
    first ??= describe(e, st.names);
  }
  if (events.some((e) => e.type === 'dellink')) for (const e of events) if (e.type === 'dellink') st.names.delete(e.ifindex);
  return first;
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

  if (o.netlink ?? process.platform === 'linux') {
    const { openMonitor } = await import('../native/netlink.js');
    const mon = openMonitor({ rcvbuf: 1 << 20, ...(o.netns ? { netns: o.netns } : {}) });
    const st: RtnlFilterState = { names: new Map() };
    try {
      const { dumpLinks, NetlinkSocket } = await import('../native/netlink.js');
      const req = NetlinkSocket.open(o.netns ? { netns: o.netns } : {});
      try {
        for (const l of dumpLinks(req)) if (l.ifname) st.names.set(l.ifindex, l.ifname);
      } finally {
        req.close();
      }
    } catch {
      /* names are learnt from events as well */
    }
    mon.listen((events) => {
      const d = wakingEvent(events, st, { echo: o.isEcho(), ...o.claims() });
      if (d) o.onWake('network', d);
    });
    closers.push(() => mon.close());
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
