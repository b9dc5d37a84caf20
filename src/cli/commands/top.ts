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
import { describeCorrupt, FileStateStore } from '../../util/state.js';
import { printError, type Io } from '../output.js';
import { filterDocument, parseSort, renderTop, type TopViewOptions } from '../render-top.js';
import { viaDaemon } from '../via-daemon.js';

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

/** documents from somewhere until the returned stop; `onEnd` once when they stop first */
type Documents = (
  onDoc: (d: TopDocument) => void,
  onEnd: (err: AwgError) => void,
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
  const via = await viaDaemon(io, o, (client) => present(io, s, fromDaemon(client, s), deps));
  if ('code' in via) return via.code;
  return present(io, s, direct(o, s, deps), deps);
}

function fromDaemon(c: DaemonClient, s: TopSettings): Documents {
  return async (onDoc, onEnd) =>
    c.top(
      {
        intervalMs: s.intervalMs,
        // the tunnel filter also looks at each process's connections
        connections: s.json || s.tunnel !== undefined,
      },
      onDoc,
      (err) => onEnd(err ?? new AwgError('driver', 'the awg daemon ended awg top (it stopped)')),
    );
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
      return topContext(config, {
        cgroupRoot: applied.cgroupRoot,
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
  let finish!: (err?: AwgError) => void;
  const finished = new Promise<{ err?: AwgError }>(
    (resolve) => (finish = (err) => resolve(err ? { err } : {})),
  );
  const draw = (doc: TopDocument) => {
    const { columns, rows } = size();
    const view = renderTop(doc, {
      ...s,
      ...(columns ? { width: columns } : {}),
      ...(rows ? { height: rows } : {}),
    });
    io.out(HOME + view.replace(/\n/g, `${EOL}\n`) + EOS);
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
    stop = await documents(show, (err) => finish(err));
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
