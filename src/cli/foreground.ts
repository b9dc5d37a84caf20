/**
 * Run the daemon core in the foreground until SIGINT/SIGTERM (shared by `awg up` and
 * `awg daemon`): `awg up` prints events as text lines (or JSON lines with --json) and the
 * mutation log on stderr; `awg daemon` writes all of it to its log (util/log.ts: pino JSON
 * lines, journald priorities). On the signal the host is left as `awg down` would leave it
 * (the kill switch keeps the nft table).
 */
import type { Io } from './output.js';
import { JsonReporter, printError, TextReporter } from './output.js';
import { toAwgError } from '../errors.js';
import { formatRate } from '../config/rate.js';
import type { DaemonEvent } from '../daemon/core.js';
import { levelLog, LogReporter, type Logger } from '../util/log.js';
import { safeLine } from '../util/sanitize.js';
import { startDaemonCore, type Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { takeOwnership } from '../pipeline/owner.js';
import type { OwnerLock, OwnerNatives } from '../resources/owner-lock.js';
import { loadPlatform } from '../resources/registry.js';
import type { Reporter } from '../util/reporter.js';

export interface ForegroundOptions {
  json?: boolean | undefined;
  verbose?: boolean | undefined;
  /** started after the core (e.g. the gRPC socket); returns its closer */
  onStarted?: (core: Daemon) => Promise<() => Promise<void>>;
  /** resolves when the daemon should stop (default: SIGINT or SIGTERM) */
  until?: Promise<string>;
  /** the daemon's log: events, mutations and the placer's stray output go there instead of io */
  log?: Logger;
  /**
   * the owner lock to hold while running (pipeline/owner.ts): the command and its API socket;
   * `natives` for a test's host (default: this host's platform)
   */
  owner?: { command: 'up' | 'daemon'; socket?: string; natives?: OwnerNatives };
}

/** how loud an event is in the log */
export function eventLevel(e: DaemonEvent): 'info' | 'warn' | 'error' {
  if (e.type === 'error') return 'error';
  if (
    e.type === 'drift' ||
    e.type === 'reverted' ||
    (e.type === 'tunnel' && (e.state === 'down' || e.state === 'auth-failed')) ||
    (e.type === 'profile' && e.reason !== 'network')
  )
    return 'warn';
  if (e.type === 'reconcile-finished' && e.error) return 'warn';
  return 'info';
}

/** One line per event for a terminal or a log: names, paths and messages in it come from outside (safeLine). */
export function formatEvent(e: DaemonEvent): string {
  return safeLine(eventText(e));
}

function eventText(e: DaemonEvent): string {
  switch (e.type) {
    case 'reconcile-started':
      return `reconcile started (${e.reason})`;
    case 'reconcile-finished': {
      const s = e.summary;
      const n = s.create + s.update + s.replace + s.delete;
      return `reconcile ${e.outcome} (${e.reason}) in ${e.durationMs} ms${n ? `: ${s.create} create, ${s.update} update, ${s.replace} replace, ${s.delete} delete` : ''}${e.error ? ` — ${e.error.kind}: ${e.error.message}` : ''}`;
    }
    case 'drift':
      return `drift ${e.repaired ? 'repaired' : 'found'}: ${e.ids.join(', ')}`;
    case 'gap':
      return `events lost after ${e.after || 'the start'} (${e.reason}): the state is re-read`;
    case 'network-changed':
      return `network changed: ${e.detail}`;
    case 'config-changed':
      return `config ${e.path} changed${e.valid ? '' : ' (invalid: keeping the last good configuration)'}`;
    case 'tunnel':
      return `tunnel ${e.tunnel} ${e.state}`;
    case 'handshake':
      return `handshake ${e.tunnel} with ${e.peer}`;
    case 'profile':
      return `tunnel ${e.tunnel} obfuscation profile ${e.from} → ${e.to} (${e.reason === 'network' ? 'the one that worked on this network' : `down: ${e.reason}`})`;
    case 'sticky':
      return e.held
        ? `rule ${e.rule} held on its fallback (sticky) since ${e.since}: tunnel ${e.tunnel} is up again`
        : `rule ${e.rule} back to tunnel ${e.tunnel} (sticky hold ended${e.reason ? `: ${e.reason === 'apply' ? 'awg apply' : `the ${e.reason} changed`}` : ''})`;
    case 'confirm-pending':
      return `confirm by ${e.deadline} or the change is reverted`;
    case 'reverted':
      return `reverted: ${e.reason}`;
    case 'rollout':
      return `revision ${e.revision.slice(0, 12)}: ${e.message}`;
    case 'revision-rejected':
      return `revision ${e.revision} rejected: ${e.reason}${e.revertedTo ? `; back on ${e.revertedTo}` : ''}`;
    case 'error':
      return `error [${e.kind}]: ${e.message}`;
    case 'list':
      return listEventText(e);
    case 'limit':
      return `limit of process ${e.pid} ${e.action}${e.upload !== undefined || e.download !== undefined ? `: ${limitRates(e)}` : ''}${e.reason ? ` (${e.reason})` : ''}`;
    case 'traffic':
      return `traffic: ${[...e.rules.map((r) => `rule ${r.name} tx ${humanBytes(r.txBytes)} rx ${humanBytes(r.rxBytes)}`), ...e.tunnels.map((t) => `tunnel ${t.tunnel} tx ${humanBytes(t.txBytes)} rx ${humanBytes(t.rxBytes)}`)].join(', ') || 'none'}`;
  }
}

/** a list fetch: `list URL fetched (N entries)`, `… not modified`, `… failed: why; …` */
export function listEventText(e: Extract<DaemonEvent, { type: 'list' }>): string {
  const n = e.entries !== undefined ? ` (${e.entries.toLocaleString('en-US')} entries)` : '';
  if (e.result === 'fetched') return `list ${e.list} fetched${n}`;
  if (e.result === 'not-modified') return `list ${e.list} not modified${n}`;
  return `list ${e.list} ${e.refused ? 'refused' : 'not fetched'}: ${e.error ?? 'failed'}; the last good copy stays in use`;
}

/** a limit's rates as the config writes them: `upload 2Mbit, download 1Mbit` */
export function limitRates(l: {
  upload?: number | undefined;
  download?: number | undefined;
}): string {
  return [
    l.upload !== undefined ? `upload ${formatRate(l.upload)}` : undefined,
    l.download !== undefined ? `download ${formatRate(l.download)}` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(', ');
}

/** 1536 → "1.5 KiB" (bytes below 1 KiB exact) */
export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => resolve(sig);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

export async function runForeground(
  io: Io,
  core: DaemonOptions,
  o: ForegroundOptions = {},
): Promise<number> {
  const until = o.until ?? stopSignal();
  const log = o.log;
  const reporter = log
    ? new LogReporter(log)
    : o.json
      ? new JsonReporter(io)
      : new TextReporter(io, o.verbose);
  const onPlacerLog = (line: string) =>
    log ? log.warn({ from: 'placer' }, line) : io.err(`awg placer: ${line}\n`);
  const warn = (m: string) => (log ? log.warn(m) : io.err(`warning: ${m}\n`));
  let lock: OwnerLock | undefined;
  try {
    // a second daemon, `awg up` beside one, or another state directory's objects: refused here,
    // before anything of the host is touched (a short-lived apply or down is waited for)
    if (o.owner)
      lock = await takeOwnership(o.owner.natives ?? (await loadPlatform()), {
        command: o.owner.command,
        stateDir: core.stateDir,
        socket: o.owner.socket,
        ...(core.env ? { env: core.env } : {}),
        waitMs: 60_000,
        warn,
      });
  } catch (e) {
    const err = toAwgError(e);
    log?.error({ kind: err.kind }, err.message);
    printError(io, err);
    return err.exitCode;
  }
  try {
    return await runCore(io, core, o, reporter, onPlacerLog, until);
  } finally {
    lock?.release();
  }
}

async function runCore(
  io: Io,
  core: DaemonOptions,
  o: ForegroundOptions,
  reporter: Reporter,
  onPlacerLog: (line: string) => void,
  until: Promise<string>,
): Promise<number> {
  const log = o.log;
  const d = await startDaemonCore({
    ...core,
    reporter,
    onPlacerLog,
    ...(log ? { engineLog: levelLog(log.child({ component: 'engine' })) } : {}),
  });
  const unsub = d.subscribe((e) => {
    if (log) log[eventLevel(e)]({ ...e }, formatEvent(e));
    else io.out(o.json ? JSON.stringify(e) + '\n' : `${e.at} ${formatEvent(e)}\n`);
  });
  const close = o.onStarted ? await o.onStarted(d) : undefined;
  const sig = await until;
  if (log) log.info({ signal: sig }, `${sig}: stopping`);
  else if (!o.json) io.out(`${new Date().toISOString()} ${sig}: stopping\n`);
  await close?.();
  let r: Awaited<ReturnType<Daemon['stop']>>;
  try {
    r = await d.stop();
  } catch (e) {
    const err = toAwgError(e);
    log?.error({ kind: err.kind }, `stopping left the host in an unknown state: ${err.message}`);
    printError(io, err);
    io.err('awg: stopping left the host in an unknown state; run `awg status` and `awg down`\n');
    unsub();
    return err.exitCode;
  }
  const stopped = {
    type: 'stopped',
    at: new Date().toISOString(),
    removed: r.removed,
    killSwitchKept: r.keptFirewall,
  };
  const text = `stopped: removed ${r.removed.length} object(s)${r.keptFirewall ? '; the kill switch stays (traffic blocked until the next start or `awg down`)' : ''}`;
  if (log) log.info(stopped, text);
  else if (o.json) io.out(JSON.stringify(stopped) + '\n');
  else io.out(`${stopped.at} ${text}\n`);
  unsub();
  return 0;
}
