/**
 * The daemon's look at awg's own releases: whether the configured apt source offers a newer
 * awg (status `update`, the metric awg_update_available, the UI's banner). It checks only a
 * Debian install with awg's apt source configured (/etc/apt/sources.list.d/awg.sources); an npm
 * install, a checkout or a host without that source is never checked, and its status has no
 * `update`.
 *
 * Cheap by contract: once a minute after start, then daily; `local` (the default) reads apt's
 * lists as they are (`apt-cache policy awg`: no network — the host's own apt timers refresh
 * them), `refresh` first refreshes awg's source alone (`apt-get update` of that one file: the
 * network, to that repository only) — the user's choice (`awg daemon --update-check refresh`).
 * Never an upgrade: that is `awg update --apply`, the user's.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { toAwgError } from '../errors.js';
import type { Exec } from '../util/exec.js';
import { PACKAGE_ROOT, packagePath } from '../util/package-root.js';
import {
  aptCheck,
  awgAptSource,
  installKind,
  refreshAwgSource,
  type InstallKind,
} from '../util/package-update.js';
import type { StatusResponse } from './core.js';

export type UpdateStatus = NonNullable<StatusResponse['update']>;

export const UPDATE_CHECK_MODES = ['off', 'local', 'refresh'] as const;
export type UpdateCheckMode = (typeof UPDATE_CHECK_MODES)[number];

export const UPDATE_CHECK_FIRST_MS = 60_000;
export const UPDATE_CHECK_INTERVAL_MS = 24 * 3600_000;

export interface UpdateWatchOptions {
  exec: Exec;
  mode?: UpdateCheckMode | undefined;
  /** default: from where this awg's files are (util/package-update.ts installKind) */
  kind?: InstallKind;
  /** awg's apt source, read at each check (default awgAptSource: the file may come later) */
  source?: () => string | undefined;
  /** the running version (default: package.json's) */
  current?: string;
  firstMs?: number;
  intervalMs?: number;
  /** apt's environment (tests: APT_CONFIG) */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

export class UpdateWatch {
  private last: UpdateStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<UpdateStatus | undefined> | undefined;
  private closed = false;

  constructor(private readonly o: UpdateWatchOptions) {}

  /** whether this install is ever checked (the source is looked for at each check) */
  get enabled(): boolean {
    return (this.o.mode ?? 'local') !== 'off' && this.kind() === 'deb';
  }

  start(): void {
    if (!this.enabled) return;
    this.schedule(this.o.firstMs ?? UPDATE_CHECK_FIRST_MS);
  }

  status(): UpdateStatus | undefined {
    return this.last;
  }

  /** one check now (a check under way is joined, not doubled) */
  check(): Promise<UpdateStatus | undefined> {
    this.running ??= this.checkOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule(this.o.intervalMs ?? UPDATE_CHECK_INTERVAL_MS));
    }, ms);
    // a pending check never keeps the daemon alive
    this.timer.unref();
  }

  private kind(): InstallKind {
    return this.o.kind ?? installKind(realpathSync(PACKAGE_ROOT));
  }

  private async checkOnce(): Promise<UpdateStatus | undefined> {
    const source = (this.o.source ?? awgAptSource)();
    if (!this.enabled || !source) {
      this.last = undefined;
      return undefined;
    }
    const checkedAt = (this.o.now?.() ?? new Date()).toISOString();
    try {
      if (this.o.mode === 'refresh') await refreshAwgSource(this.o.exec, source, this.o.env);
      const a = await aptCheck(this.o.exec, this.o.current ?? currentVersion(), this.o.env);
      this.last = {
        checkedAt,
        available: a.updateAvailable,
        installed: a.installed,
        candidate: a.candidate,
        ...(a.suites.length ? { suites: a.suites } : {}),
      };
    } catch (e) {
      // what the last good check found stays, with the reason this one failed
      this.last = {
        ...(this.last ?? { available: false }),
        checkedAt,
        error: toAwgError(e).message,
      };
    }
    return this.last;
  }
}

/** package.json's version as installed now (read each time: an upgrade replaces it under a running daemon) */
function currentVersion(): string {
  return (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string })
    .version;
}
