/**
 * The config follower: the one config file the daemon follows (`--config`, the file of the
 * last apply, or the file an API apply names), its last good read and what the newest read
 * said. It is re-read on every run (reload): an invalid file keeps the last good desired
 * state and is reported once per content (`config-changed {valid:false}` + `error`); a
 * change is seen by one hash over the config and the overlay files it applied. It also says
 * which files the watcher should watch and what `status` reports of the config (the git
 * revision it runs at, whether the newest read is valid).
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { AwgError, formatIssue, toAwgError } from '../errors.js';
import type { HostSelection } from '../config/overlay.js';
import type { UrlListSource } from '../config/load-destinations.js';
import { parsedListsIn } from '../config/parsed-lists.js';
import { VERSION } from '../util/package-version.js';
import type { HostFacts } from '../model/desired.js';
import { prepare, type Prepared, type PrepareOptions } from '../pipeline/prepare.js';
import type { Platform } from '../resources/registry.js';
import type { Exec } from '../util/exec.js';
import { LIMITS, readRegularFileSync } from '../util/files.js';
import { gitHeadFiles, gitRevisionOf } from '../util/git-revision.js';
import { fingerprintKeyOf } from '../util/host-key.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';
import type { ConfigState, DaemonEvent } from './core.js';

/** a config file and its prepared desired state */
export interface Source {
  file: string;
  prepared: Prepared;
}

export type ReadResult = { ok: true; prepared: Prepared } | { ok: false; error: AwgError };

export interface ConfigFollowerOptions {
  /** the file followed from the start (`--config`, else the last apply's); none: not yet known */
  file?: string | undefined;
  /**
   * read and prepare a file; `api`: the file is named by an API request; `origin`: the
   * followed file `file` is a copy of (the last good revision's, last-good.ts)
   */
  read: (file: string, api: boolean, origin?: string) => Promise<ReadResult>;
  emit: (e: DaemonEvent) => void;
  /** the files to watch now (the config, its overlay files, the checkout's HEAD); none: no watch */
  watch: (files: string[]) => void;
  /** the host name overlays are selected for (`--host`), for the config state */
  host?: string | undefined;
  /** said once each time the followed file is found missing (the daemon logs it) */
  waiting?: ((file: string) => void) | undefined;
  /**
   * The one call point before a new revision of a checkout is taken (the rollout gate,
   * rollout-gate.ts): false keeps the last good config running. Asked only when a good config
   * runs and the new read is another commit with other files.
   */
  admit?:
    ((c: { file: string; prepared: Prepared; revision: string }) => Promise<boolean>) | undefined;
  /**
   * a revision of the checkout this host rejected, or one whose files (`content`: their hash,
   * computed when asked) are those of a rejected one (revision-watch.ts): while HEAD is at it,
   * the last good config runs and the files are not read
   */
  held?: ((revision: string | undefined, content: () => string) => boolean) | undefined;
  /**
   * Asked at the first good read of a checkout's config after the daemon started: a copy of
   * the last good revision (last-good.ts) to run instead of HEAD (rejected, or held by the
   * rollout gate); undefined: take HEAD.
   */
  restore?:
    | ((c: {
        file: string;
        prepared: Prepared;
        revision: string;
        content: () => string;
        /** read a copy of `file` */
        read: (copy: string) => Promise<ReadResult>;
      }) => Promise<{ revision: string; file: string } | undefined>)
    | undefined;
}

const now = () => new Date().toISOString();

export class ConfigFollower {
  private path: string | undefined;
  private current: Source | undefined;
  /** why the newest read of the config failed (the last good one keeps running); undefined: valid */
  private error: string | undefined;
  /** git commit of the checkout when the good config was read */
  private goodRevision: string | undefined;
  /** sourcesHash of the good config's files when they were read */
  private goodHash: string | undefined;
  /** sourcesHash of the files the last reload read: a change between reloads is reported */
  private seenHash: string | undefined;
  /** the followed file did not exist at the last reload, and no good read of it is kept */
  private absent = false;
  /** a good config was taken since the daemon started (the last good revision is not restored) */
  private started = false;

  constructor(private readonly o: ConfigFollowerOptions) {
    this.path = o.file ? resolve(o.file) : undefined;
  }

  /** the file followed; undefined before a config is known (and after down) */
  get file(): string | undefined {
    return this.path;
  }

  /**
   * The followed file does not exist (yet) and nothing of it runs: the daemon waits for it
   * (the packaged unit's /etc/awg/config.yaml before the user writes it). Not an error: the
   * watch sees the file appear and the next run reads it.
   */
  get waiting(): boolean {
    return this.absent;
  }

  /** the last good read: what the daemon reconciles toward */
  get good(): Source | undefined {
    return this.current;
  }

  /** Read and prepare `file` (an API request's with `api`), without following it. */
  read(file: string, api = false): Promise<ReadResult> {
    return this.o.read(file, api);
  }

  /**
   * Follow `file`, read good as `prepared` (an API apply, a revert to the one before);
   * `revision`: the commit it was read at, when that is not the checkout's now (a rejected
   * revision's revert: its files on disk are no longer the ones it was read from).
   */
  follow(file: string, prepared: Prepared, revision?: string): void {
    this.path = file;
    this.absent = false;
    this.current = { file, prepared };
    this.started = true;
    this.error = undefined;
    this.goodRevision = revision ?? gitRevisionOf(file);
    this.goodHash = revision === undefined ? sourcesHash([file, ...prepared.sources]) : undefined;
    this.seenHash = undefined;
    this.o.watch([...(prepared.sources.length ? prepared.sources : [file]), ...gitHeadFiles(file)]);
  }

  /** Follow nothing (down, a revert to before any config). */
  forget(): void {
    this.path = undefined;
    this.absent = false;
    this.current = undefined;
    this.o.watch([]);
  }

  /** Re-read the config; returns the source to reconcile toward (last good on errors). */
  async reload(): Promise<{ source?: Source | undefined; error?: AwgError }> {
    const file = this.path;
    if (!file) return {};
    // a file that is not there yet, and no good read of it: wait (said once per absence). A
    // followed file deleted later is a read error like any other: the last good one runs on.
    if (this.current?.file !== file && missing(file)) {
      if (!this.absent) this.o.waiting?.(file);
      this.absent = true;
      this.error = `${file} does not exist yet: the daemon applies it when it appears`;
      this.seenHash = undefined;
      this.o.watch([file]);
      return {};
    }
    this.absent = false;
    const good = this.current?.file === file ? this.current : undefined;
    if (
      good &&
      this.o.held?.(gitRevisionOf(file), () => sourcesHash([file, ...good.prepared.sources]))
    ) {
      this.error = undefined;
      return { source: this.current };
    }
    // the config and the overlay files the last good load applied: an edit of either is a change
    const hashed = [file, ...(this.current?.file === file ? this.current.prepared.sources : [])];
    const hash = sourcesHash(hashed);
    const changed = this.seenHash !== undefined && hash !== this.seenHash;
    const first = this.seenHash === undefined;
    this.seenHash = hash;
    const r = await this.o.read(file, false);
    if (r.ok) {
      if (changed) this.o.emit({ type: 'config-changed', at: now(), path: file, valid: true });
      this.error = undefined;
      const revision = gitRevisionOf(file);
      if (!good && !this.started && revision && (await this.restored(file, r.prepared, revision)))
        return { source: this.current };
      if (!(await this.admitted(file, r.prepared, revision, hash, hashed)))
        return { source: this.current };
      this.goodRevision = revision;
      this.current = { file, prepared: r.prepared };
      this.started = true;
      // the same files as hashed above (the usual case): that hash, not a second read of them
      const files = [file, ...r.prepared.sources];
      this.goodHash =
        files.length === hashed.length && files.every((f, i) => f === hashed[i])
          ? hash
          : sourcesHash(files);
      this.o.watch([...r.prepared.sources, ...gitHeadFiles(file)]);
      return { source: this.current };
    }
    this.error = r.error.message;
    if (changed || first) {
      if (changed) this.o.emit({ type: 'config-changed', at: now(), path: file, valid: false });
      this.o.emit({ type: 'error', at: now(), kind: r.error.kind, message: r.error.message });
    }
    return {
      source: this.current?.file === file ? this.current : undefined,
      error: r.error,
    };
  }

  /**
   * At start, HEAD may not be taken and the last good revision is known: run a copy of it
   * (read from the copy, followed as `file` at that revision) until the gate admits HEAD.
   */
  private async restored(file: string, prepared: Prepared, revision: string): Promise<boolean> {
    const back = await this.o.restore?.({
      file,
      prepared,
      revision,
      content: () => sourcesHash([file, ...prepared.sources]),
      read: (copy) => this.o.read(copy, false, file),
    });
    if (!back) return false;
    const r = await this.o.read(back.file, false, file);
    if (!r.ok) {
      this.o.emit({
        type: 'error',
        at: now(),
        kind: r.error.kind,
        message: `the last good revision ${back.revision.slice(0, 12)} cannot be read (${r.error.message}): revision ${revision.slice(0, 12)} at HEAD is applied although it is held back`,
      });
      return false;
    }
    this.current = { file, prepared: r.prepared };
    this.started = true;
    this.goodRevision = back.revision;
    // its files are not the checkout's: every new read is a change the gate is asked about
    this.goodHash = undefined;
    this.o.watch([file, ...prepared.sources, ...gitHeadFiles(file)]);
    return true;
  }

  /** the rollout gate lets a new revision of the running config's checkout through */
  private async admitted(
    file: string,
    prepared: Prepared,
    revision: string | undefined,
    hash: string,
    hashed: readonly string[],
  ): Promise<boolean> {
    const good = this.current?.file === file ? this.current : undefined;
    if (!this.o.admit || !good || !revision || revision === this.goodRevision) return true;
    const files = [file, ...prepared.sources];
    const same =
      files.length === hashed.length && files.every((f, i) => f === hashed[i])
        ? hash === this.goodHash
        : sourcesHash(files) === this.goodHash;
    // a commit that leaves this host's files as they are changes nothing here
    if (same) return true;
    return this.o.admit({ file, prepared, revision });
  }

  /** what `status` says of the config followed (with the runs' part); undefined before one is known */
  state(runs: {
    lastConverged?: string | undefined;
    lastPlanChanges: number;
  }): ConfigState | undefined {
    const file = this.path;
    if (!file) return undefined;
    const good = this.current?.file === file ? this.current : undefined;
    const checkout = gitRevisionOf(file);
    // a pull that touched none of this host's files (another host's overlay) leaves the same
    // config: it runs at the new commit as well
    const untouched =
      good &&
      !this.error &&
      checkout !== undefined &&
      this.goodHash === sourcesHash([file, ...good.prepared.sources]);
    const revision = good ? (untouched ? checkout : this.goodRevision) : undefined;
    return {
      ...(revision ? { revision } : {}),
      valid: !this.error,
      ...(this.error ? { error: this.error } : {}),
      ...(good ? { sources: good.prepared.sources } : {}),
      ...(this.o.host ? { host: this.o.host } : {}),
      ...(runs.lastConverged ? { lastConverged: runs.lastConverged } : {}),
      lastPlanChanges: runs.lastPlanChanges,
      ...(checkout ? { checkoutRevision: checkout } : {}),
    };
  }
}

/**
 * `{env:}` secrets would come from the daemon's environment, not the caller's: resolved only
 * for the file the daemon was started with (`--config`, e.g. the unit's Environment=), never
 * for a config named through the API, nor for one remembered from an earlier apply.
 */
export const ENV_REFUSED =
  "{env:} secrets are not resolved for a config given through the daemon's API (the daemon's environment is not the caller's); use {file: ...}, `awg apply --direct`, or start the daemon with --config naming this file";

export interface ConfigReadOptions {
  /** this host's platform, once the daemon is ready (a failure there fails the read) */
  platform: () => Promise<Platform>;
  /** resolve `{env:}` secrets: only for the file the daemon was started with (ENV_REFUSED) */
  ownEnv: boolean;
  env?: NodeJS.ProcessEnv | undefined;
  selection?: HostSelection | undefined;
  /** tunnels not up now (tunnel health) */
  down: ReadonlySet<string>;
  /** rules held on their fallback (sticky.ts), for the network the facts show */
  held?: PrepareOptions['held'];
  /** the active obfuscation profiles for the network the facts show (profile-switch.ts) */
  profiles?: PrepareOptions['profiles'];
  /** the processes limited at run time a run of the config shapes (limit-book.ts forRun) */
  runtimeLimits?: PrepareOptions['runtimeLimits'];
  state: StateStore;
  reporter: Reporter;
  /** use these facts (tests); else they are probed through `exec` */
  facts?: HostFacts | undefined;
  exec: Exec;
  /** the last good copies of URL lists (the daemon's cache: lists-host.ts) */
  urlList?: UrlListSource | undefined;
}

/** How the daemon reads a config: prepare it for this host, every failure an AwgError. */
export async function readConfig(file: string, o: ConfigReadOptions): Promise<ReadResult> {
  try {
    const platform = await o.platform();
    const r = await prepare(file, {
      platform,
      env: o.env,
      ...(o.selection ? { selection: o.selection } : {}),
      down: o.down,
      ...(o.held ? { held: o.held } : {}),
      ...(o.profiles ? { profiles: o.profiles } : {}),
      learn: true,
      ...(o.runtimeLimits ? { runtimeLimits: o.runtimeLimits } : {}),
      state: o.state,
      persistEndpoints: true,
      fingerprintKey: () =>
        fingerprintKeyOf(o.state, {
          onReplaced: (why) => o.reporter.report({ type: 'warning', message: why }),
        }),
      ...(o.ownEnv ? {} : { envSecretsRefused: ENV_REFUSED }),
      ...(o.facts ? { facts: o.facts } : { probe: true, exec: o.exec }),
      ...(o.urlList ? { urlList: o.urlList } : {}),
      // the parses kept by the last run (or `awg apply`): an unchanged list is not parsed again,
      // an edit that inserted addresses is parsed from the kept parse (config/parsed-lists.ts)
      ...(isAbsolute(o.state.dir)
        ? { parsedLists: parsedListsIn(o.state.dir, { program: VERSION }) }
        : {}),
    });
    if (r.ok) return r;
    const errors = r.issues.filter((i) => i.severity === 'error');
    return {
      ok: false,
      error: new AwgError(
        r.kind ?? 'invalid-config',
        `${file}: ${r.kind === 'unsupported' ? 'this host cannot run it' : 'invalid configuration'}: ${errors.map(formatIssue).join('; ')}`,
        { issues: r.issues },
      ),
    };
  } catch (e) {
    return { ok: false, error: toAwgError(e, 'invalid-config') };
  }
}

/** what the daemon logs once when the file it follows is missing; `last`: the last apply's file */
export function waitingMessage(file: string, last: string | undefined): string {
  const other =
    last && resolve(last) !== file
      ? ` (the last apply was of ${last}: \`awg apply -f ${last}\` runs it now)`
      : '';
  return `waiting for the config ${file}: it does not exist yet; nothing is applied until it does${other}`;
}

/** no such file (or a directory of its path is missing); a dangling symlink counts as missing */
function missing(file: string): boolean {
  try {
    statSync(file);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  }
}

/** One hash over files (path and content; unreadable ones by their error): has any changed? */
export function sourcesHash(files: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of new Set(files)) {
    h.update(f).update('\0');
    try {
      h.update(readRegularFileSync(f, { maxBytes: LIMITS.config }));
    } catch (e) {
      h.update(`unreadable:${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    h.update('\0');
  }
  return h.digest('hex');
}
