/**
 * `awg top`: who sends and receives what, where — per process, rule and tunnel, refreshed
 * every interval (procs/top: the kernel's real byte counts per flow, aggregated by the
 * monitor). Through the daemon when it answers (its Top call: one shared reader), else
 * `--direct`: the kernel read in this process, the rules and tunnels of the last apply.
 *
 * Output: on a terminal a live view redrawn in place (alternate screen, cursor home, every
 * line cleared to its end; plain ANSI, so it works over ssh), fitted to the terminal's width
 * and height and redrawn on resize; the terminal is given back on exit and on Ctrl-C. No raw
 * mode: keys are not read. Not a terminal: each snapshot as plain text. `--json`: one
 * document per line per interval (schema/top.schema.json). `--once`: the first snapshot,
 * one interval after the start.
 */
import { AwgError, toAwgError } from '../../errors.js';
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { isWgLike, linkName } from '../../config/schema.js';
import type { DaemonChoice, DaemonClient } from '../../daemon/client.js';
import { limitMembers, savedLimits, type LimitRates } from '../../daemon/limit-book.js';
import { linuxLimitSystem } from '../../daemon/limit-system.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../pipeline/claims.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { Monitor } from '../../procs/top/aggregate.js';
import type { TopDocument } from '../../procs/top/document.js';
import type { TrafficSource } from '../../procs/top/reading.js';
import { topContext, type TopContext } from '../../procs/top/routing.js';
import { trafficSource } from '../../procs/top/source.js';
import { loadPlatform, type Platform } from '../../resources/registry.js';
import { ProcessExec, type Exec } from '../../util/exec.js';
import { silentReporter } from '../../util/reporter.js';
import { describeCorrupt, FileStateStore, type StateStore } from '../../util/state.js';
import { printError, type Io } from '../output.js';
import { filterDocument, parseSort, renderTop, type TopViewOptions } from '../render-top.js';
import { viaDaemon } from '../via-daemon.js';
import { follow, serviceText, type ReconnectDeps, type ServiceChange } from '../reconnect.js';

export interface TopOptions extends DaemonChoice {
  /** seconds between snapshots (default 1) */
  interval?: string | undefined;
  once?: boolean | undefined;
  json?: boolean | undefined;
  sort?: string | undefined;
  reverse?: boolean | undefined;
  rule?: string | undefined;
  tunnel?: string | undefined;
  stateDir?: string | undefined;
  /** false (`--no-reconnect`): end when the daemon goes away */
  reconnect?: boolean | undefined;
}

/** injection for tests; defaults: stdout's TTY-ness and size, SIGINT/SIGTERM, this host */
export interface TopDeps {
  tty?: boolean;
  size?: () => { columns?: number | undefined; rows?: number | undefined };
  until?: Promise<unknown>;
  /** direct mode's kernel reader */
  source?: () => Promise<TrafficSource>;
  platform?: Platform;
  exec?: Pick<Exec, 'read'>;
  reconnect?: ReconnectDeps;
}

export interface TopSettings extends TopViewOptions {
  intervalMs: number;
  once: boolean;
  json: boolean;
}

/** the options as the command runs them; AwgError('invalid-config') on a bad value */
export function topSettings(o: TopOptions): TopSettings {
  const secs = o.interval === undefined ? 1 : Number(o.interval);
  if (!Number.isFinite(secs) || secs < 0.1 || secs > 3600)
    throw new AwgError(
      'invalid-config',
      `--interval ${o.interval}: seconds between 0.1 and 3600 (e.g. 1, 0.5)`,
    );
  return {
    intervalMs: Math.round(secs * 1000),
    once: o.once === true,
    json: o.json === true,
    sort: o.sort === undefined ? undefined : parseSort(o.sort),
    reverse: o.reverse === true,
    ...(o.rule !== undefined ? { rule: o.rule } : {}),
    ...(o.tunnel !== undefined ? { tunnel: o.tunnel } : {}),
  };
}

/**
 * documents from somewhere until the returned stop; `onEnd` once when they stop first;
 * `onService` when the daemon goes away and comes back (the daemon's documents only)
 */
type Documents = (
  onDoc: (d: TopDocument) => void,
  onEnd: (err: AwgError) => void,
  onService: (c: ServiceChange) => void,
) => Promise<() => void>;

export async function topCommand(io: Io, o: TopOptions, deps: TopDeps = {}): Promise<number> {
  let s: TopSettings;
  try {
    s = topSettings(o);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
  const via = await viaDaemon(io, o, (client) =>
    present(io, s, fromDaemon(client, s, o.reconnect !== false && !s.once, deps), deps),
  );
  if ('code' in via) return via.code;
  return present(io, s, direct(o, s, deps), deps);
}

/**
 * The daemon's Top call; when the daemon goes away (unless `--no-reconnect` or `--once`) the
 * call is made again once it answers, with backoff in between.
 */
function fromDaemon(c: DaemonClient, s: TopSettings, reconnect: boolean, deps: TopDeps): Documents {
  const req = {
    intervalMs: s.intervalMs,
    // the tunnel filter also looks at each process's connections
    connections: s.json || s.tunnel !== undefined,
  };
  return async (onDoc, onEnd, onService) => {
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    void follow({
      client: c,
      start: async (client, end) => client.top(req, onDoc, end),
      onService,
      until,
      reconnect,
      closed: 'the awg daemon ended awg top (it stopped)',
      deps: deps.reconnect,
    }).then((err) => err && onEnd(err));
    return stop;
  };
}

/** what the last apply says: its config (rules, tunnels) and cgroup root; a warning when none */
async function lastApplied(o: TopOptions): Promise<{
  config?: Config;
  cgroupRoot: string;
  state: FileStateStore;
  warnings: string[];
}> {
  const corrupt: string[] = [];
  const state = new FileStateStore(stateDirFrom(o.stateDir), {
    onCorrupt: (c) => corrupt.push(describeCorrupt(c)),
  });
  const last = new AppliedStore(state).load();
  if (!last)
    return {
      cgroupRoot: DEFAULT_CLAIMS.cgroupRoot,
      state,
      warnings: [
        `awg is not applied here (${corrupt.length ? corrupt.join('; ') : 'no apply record'}): no rules or tunnels are known, every route shows as direct`,
      ],
    };
  const loaded = await loadConfigFile(
    last.configFile,
    last.selection ? { selection: last.selection } : {},
  );
  if (!loaded.config)
    return {
      cgroupRoot: last.claims.cgroupRoot,
      state,
      warnings: [
        `cannot load ${last.configFile}, the config of the last apply: no rules or tunnels are known`,
      ],
    };
  return { config: loaded.config, cgroupRoot: last.claims.cgroupRoot, state, warnings: [] };
}

/**
 * The processes under a runtime limit (`awg limit`) the daemon recorded in the state directory,
 * with their rates; undefined where there are none (or no cgroups to read them from).
 */
function directLimits(perApp: string, state: StateStore): Map<number, LimitRates> | undefined {
  if (perApp !== 'cgroup') return undefined;
  try {
    const saved = savedLimits(state);
    return saved.length ? limitMembers(saved, linuxLimitSystem()) : undefined;
  } catch {
    return undefined;
  }
}

/** how often direct mode asks which tunnels are up */
const LINKS_EVERY_MS = 5000;

/** `--direct`: the kernel read here, the rules and tunnels of the last apply, links for health */
function direct(o: TopOptions, s: TopSettings, deps: TopDeps): Documents {
  return async (onDoc, onEnd) => {
    const platform = deps.platform ?? (await loadPlatform());
    const applied = await lastApplied(o);
    const exec = deps.exec ?? new ProcessExec(silentReporter);
    const config = applied.config;
    let links = new Set<string>();
    let linksAt = -Infinity;
    const context = async (): Promise<TopContext> => {
      if (config && performance.now() - linksAt > LINKS_EVERY_MS) {
        links = await platform.upLinks({ state: applied.state, exec }).catch(() => links);
        linksAt = performance.now();
      }
      const limited = directLimits(platform.perApp, applied.state);
      return topContext(config, {
        cgroupRoot: applied.cgroupRoot,
        ...(limited?.size ? { limitOf: (pid: number) => limited.get(pid) } : {}),
        // proxy tunnels: up while their engine resource is applied (as `awg processes` judges)
        tunnelUp: (name) => {
          const t = config?.tunnels[name];
          return t !== undefined && (isWgLike(t) ? links.has(linkName(name)) : true);
        },
      });
    };
    const source = deps.source
      ? await deps.source()
      : await trafficSource(platform.perApp, { cgroupRoot: applied.cgroupRoot });
    const monitor = new Monitor();
    let stopped = false;
    let busy = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      const started = performance.now();
      busy = true;
      try {
        const reading = await source.read();
        const ctx = await context();
        if (stopped) return;
        const doc = monitor.update(reading, ctx, { connections: s.json || s.tunnel !== undefined });
        doc.warnings.push(...applied.warnings);
        if (doc.intervalMs > 0) onDoc(doc);
      } catch (e) {
        if (!stopped) onEnd(toAwgError(e, 'driver'));
        stopped = true;
      } finally {
        busy = false;
        if (stopped) source.close();
      }
      if (!stopped)
        timer = setTimeout(
          () => void tick(),
          Math.max(0, s.intervalMs - (performance.now() - started)),
        );
    };
    void tick();
    return () => {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      if (!busy) source.close();
    };
  };
}

// plain ANSI: the alternate screen, the cursor hidden, home, erase to the end of the line / screen
const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const HOME = '\x1b[H';
const EOL = '\x1b[K';
const EOS = '\x1b[J';

function stopSignals(): { until: Promise<void>; off(): void } {
  let resolve!: () => void;
  const until = new Promise<void>((r) => (resolve = r));
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return {
    until,
    off() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

async function present(
  io: Io,
  s: TopSettings,
  documents: Documents,
  deps: TopDeps,
): Promise<number> {
  const tty = !s.json && (deps.tty ?? Boolean(process.stdout.isTTY));
  const size =
    deps.size ?? (() => ({ columns: process.stdout.columns, rows: process.stdout.rows }));
  let last: TopDocument | undefined;
  /** while the daemon is away: the line above the last view */
  let away: string | undefined;
  let finish!: (err?: AwgError) => void;
  const finished = new Promise<{ err?: AwgError }>(
    (resolve) => (finish = (err) => resolve(err ? { err } : {})),
  );
  const draw = (doc: TopDocument | undefined) => {
    const { columns, rows } = size();
    const banner = away ? `${away}\n` : '';
    const view = doc
      ? renderTop(doc, {
          ...s,
          ...(columns ? { width: columns } : {}),
          ...(rows ? { height: Math.max(1, rows - (away ? 1 : 0)) } : {}),
        })
      : '';
    io.out(HOME + (banner + view).replace(/\n/g, `${EOL}\n`) + EOS);
  };
  const service = (c: ServiceChange) => {
    if (tty) {
      away =
        c.state === 'unavailable'
          ? `daemon unavailable — reconnecting (${c.reason}; since ${c.at})`.slice(
              0,
              size().columns ?? Infinity,
            )
          : undefined;
      draw(last);
    } else if (s.json) io.err(`${c.at} ${serviceText(c)}\n`);
    else io.out(`${c.at} ${serviceText(c)}\n`);
  };
  const show = (doc: TopDocument) => {
    last = doc;
    if (s.json) io.out(JSON.stringify(filterDocument(doc, s)) + '\n');
    else if (tty) draw(doc);
    else io.out(renderTop(doc, s) + (s.once ? '' : '\n'));
    if (s.once) finish();
  };
  const leave = () => io.out(LEAVE);
  const resized = () => last && draw(last);
  if (tty) {
    io.out(ENTER);
    process.once('exit', leave);
    process.stdout.on('resize', resized);
  }
  const signals = deps.until ? undefined : stopSignals();
  let stop: (() => void) | undefined;
  let outcome: { err?: AwgError };
  try {
    stop = await documents(show, (err) => finish(err), service);
    outcome = await Promise.race([finished, (deps.until ?? signals!.until).then(() => ({}))]);
  } catch (e) {
    outcome = { err: toAwgError(e, 'driver') };
  } finally {
    stop?.();
    signals?.off();
    if (tty) {
      process.stdout.off('resize', resized);
      process.off('exit', leave);
      leave();
    }
  }
  if (outcome.err) {
    printError(io, outcome.err);
    return outcome.err.exitCode;
  }
  return 0;
}
