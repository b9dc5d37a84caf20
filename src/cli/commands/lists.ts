/**
 * `awg lists update` and `awg lists status`: the lists a config fetches by URL (`to.lists:
 * [{url}]`, docs/lists-url.md).
 *
 * Through the daemon (when it runs, unless --direct): `update` asks it to fetch the lists of
 * the config it follows now (UpdateLists; a new copy is applied by the run it wakes), and
 * `status` prints its view (the status's `lists`). Directly: the config is `-f` (else the
 * last apply's), `update` fetches each list into the state directory's cache itself, through
 * the tunnel its `via` names (which must be up: `awg apply` first), and `status` reads the
 * cache. Nothing is applied directly: the next `awg apply` (or the daemon) takes the copies.
 *
 * Exit: 0 every list current; 2 a list failed (its last good copy stays) or has no copy; 1
 * an error (the config, the daemon).
 */
import { resolve } from 'node:path';
import { AwgError, toAwgError } from '../../errors.js';
import type { DaemonChoice, DaemonClient } from '../../daemon/client.js';
import type { DaemonEvent, UpdateListsResponse, UrlListStatus } from '../../daemon/core.js';
import type { UrlListLoad } from '../../config/load.js';
import type { ListCacheMeta } from '../../util/list-cache.js';
import type { ListUpdateOutcome } from '../../pipeline/list-update.js';
import { safeLine } from '../../util/sanitize.js';
import { printError, printIssues, type Io } from '../output.js';
import { listStatusLines, updateResultLines } from '../render-lists.js';
import { viaDaemon } from '../via-daemon.js';

export interface ListsOptions extends DaemonChoice {
  file?: string | undefined;
  /** one list: its URL (or its name as the status shows it) */
  list?: string | undefined;
  json?: boolean | undefined;
  stateDir?: string | undefined;
}

const exitOf = (lists: readonly UrlListStatus[], results?: readonly { result: string }[]) =>
  lists.some((l) => l.state !== 'ok') || results?.some((r) => r.result === 'failed') ? 2 : 0;

function print(io: Io, o: ListsOptions, r: Partial<UpdateListsResponse>): void {
  if (o.json) {
    io.out(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  const lines = [...updateResultLines(r.results ?? []), ...listStatusLines(r.lists)];
  if (!lines.length) lines.push('no lists by URL in this config');
  io.out(lines.map((l) => safeLine(l) + '\n').join(''));
}

export async function listsCommand(
  io: Io,
  what: 'update' | 'status',
  o: ListsOptions,
): Promise<number> {
  const d = await viaDaemon(io, o, (c) => viaTheDaemon(io, what, o, c));
  if ('code' in d) return d.code;
  try {
    return await direct(io, what, o);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode === 0 ? 1 : err.exitCode;
  }
}

async function viaTheDaemon(
  io: Io,
  what: 'update' | 'status',
  o: ListsOptions,
  c: DaemonClient,
): Promise<number> {
  try {
    if (o.file) {
      const s = await c.status();
      if (s.configPath && resolve(o.file) !== resolve(s.configPath))
        throw new AwgError(
          'invalid-config',
          `the awg daemon follows ${s.configPath}, not ${o.file}: its lists are the ones it refreshes (--direct fetches the lists of ${o.file} into the cache without it)`,
        );
    }
    if (what === 'status') {
      const lists = (await c.status()).lists ?? [];
      const picked = lists.filter((l) => o.list === undefined || l.list === o.list);
      print(io, o, { lists: picked });
      return exitOf(picked);
    }
    const r = await c.updateLists({ list: o.list });
    if (o.list !== undefined && r.results.length === 0)
      throw new AwgError('invalid-config', `the daemon's config has no list ${o.list}`);
    // one list asked for: that one's status (and exit) alone
    const names = new Set(r.results.map((x) => x.list));
    const shown = { ...r, lists: r.lists.filter((l) => o.list === undefined || names.has(l.list)) };
    print(io, o, shown);
    return exitOf(shown.lists, r.results);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return 1;
  }
}

/** macOS's link pin without a daemon: the state's utun registry, the flow router's natives */
async function darwinLinkPin(stateDir: string) {
  const [{ utunPin }, { resolveIfname }, { loadDarwinFlowNatives }, { FileStateStore }] =
    await Promise.all([
      import('../../resources/engine/link-pin.js'),
      import('../../platform/darwin/utun.js'),
      import('../../resources/flow/flow-router-darwin.js'),
      import('../../util/state.js'),
    ]);
  const state = new FileStateStore(stateDir);
  return utunPin({ utun: (link) => resolveIfname(state, link), natives: loadDarwinFlowNatives });
}

async function direct(io: Io, what: 'update' | 'status', o: ListsOptions): Promise<number> {
  const [{ stateDirFrom }, { prepare }, upd, { ListCache }, { FileStateStore }, { AppliedStore }] =
    await Promise.all([
      import('../../pipeline/host.js'),
      import('../../pipeline/prepare.js'),
      import('../../pipeline/list-update.js'),
      import('../../util/list-cache.js'),
      import('../../util/state.js'),
      import('../../pipeline/applied.js'),
    ]);
  const stateDir = stateDirFrom(o.stateDir);
  const file = o.file ?? new AppliedStore(new FileStateStore(stateDir)).load()?.configFile;
  if (!file)
    throw new AwgError('invalid-config', 'name the config: awg lists update -f CONFIG', {
      hint: 'without a daemon, the lists are those of -f, or of the last `awg apply`',
    });
  const cache = new ListCache(stateDir);
  const r = await prepare(file, {
    state: new FileStateStore(stateDir),
    urlList: upd.cacheSource(cache),
    // the secrets only when a list is fetched through a proxy tunnel (its password)
    skipSecrets: what === 'status',
  });
  if (!r.ok) {
    printIssues(io, r.issues);
    return 1;
  }
  const p = r.prepared;
  const loads = (p.urlLists ?? []).filter(
    (l) => o.list === undefined || l.ref.url === o.list || upd.listDisplayName(l.ref) === o.list,
  );
  if (o.list !== undefined && !loads.length)
    throw new AwgError('invalid-config', `${file} has no list ${o.list}`);
  if (what === 'status') {
    const lists = loads.map((l) => statusOf(l, cache.readMeta(l.ref.url), upd.listDisplayName));
    print(io, o, { lists });
    return exitOf(lists);
  }
  const { viaConnector, viaRouteOf } = await import('../../resources/engine/via.js');
  // macOS: a fetch via a tunnel holds to the utun its link got (Linux: the link itself)
  const pin = process.platform === 'darwin' ? await darwinLinkPin(stateDir) : undefined;
  const at = new Date().toISOString();
  const results: Extract<DaemonEvent, { type: 'list' }>[] = [];
  for (const l of loads) {
    let outcome: ListUpdateOutcome;
    try {
      const connect =
        l.ref.via !== undefined
          ? viaConnector(
              await viaRouteOf(l.ref.via, {
                desired: p.desired,
                config: p.config,
                secret: (k) => p.secrets.get(k),
              }),
              pin,
            )
          : undefined;
      outcome = await upd.updateList(l.ref, cache, { connect });
    } catch (e) {
      outcome = { url: l.ref.url, result: 'failed', changed: false, error: (e as Error).message };
    }
    results.push({
      type: 'list',
      at,
      list: upd.listDisplayName(l.ref),
      result: outcome.result,
      ...(outcome.meta ? { entries: outcome.meta.entries } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
      ...(outcome.refused ? { refused: true } : {}),
    });
  }
  const lists = loads.map((l) => statusOf(l, cache.readMeta(l.ref.url), upd.listDisplayName));
  print(io, o, { results, lists });
  return exitOf(lists, results);
}

/** a list's status from its cache record (direct mode: no scheduler, no failures but the record's) */
function statusOf(
  l: UrlListLoad,
  m: ListCacheMeta | undefined,
  name: (ref: UrlListLoad['ref']) => string,
): UrlListStatus {
  const checked = m ? Date.parse(m.checkedAt) : NaN;
  return {
    list: name(l.ref),
    rules: l.rules.map((r) => r.name),
    state: !m ? 'pending' : m.lastError ? 'stale' : 'ok',
    ...(m ? { format: m.format, entries: m.entries, fetchedAt: m.fetchedAt } : {}),
    ...(m ? { checkedAt: m.checkedAt } : {}),
    ...(Number.isFinite(checked)
      ? { ageSec: Math.max(0, Math.round((Date.now() - checked) / 1000)) }
      : {}),
    ...(m?.lastError ? { error: m.lastError.message } : {}),
    failures: m?.failures ?? 0,
    failuresTotal: m?.failures ?? 0,
    refresh: l.ref.refresh,
    ...(l.ref.via !== undefined ? { via: l.ref.via } : {}),
  };
}
