/**
 * How the daemon follows its config's revisions: the config follower (config-follower.ts: the
 * file, its last good read) with the one gate it asks before a new revision of a checkout is
 * taken (rollout-gate.ts) and the check of each revision after its apply (revision-watch.ts:
 * a failing one is reverted to the revision before and rejected, and held back while HEAD is
 * at it). Also what status and the observation record say of them together.
 */
import { resolve } from 'node:path';
import { AwgError } from '../errors.js';
import { observationOf, withRollout, type ObservationRecord } from '../pipeline/observation.js';
import type { Prepared } from '../pipeline/prepare.js';
import type { Reporter } from '../util/reporter.js';
import {
  ConfigFollower,
  readConfig,
  waitingMessage,
  type ConfigReadOptions,
} from './config-follower.js';
import type { ConfigState, DaemonEvent, WakeReason } from './core.js';
import type { DaemonEnv } from './daemon-env.js';
import type { DaemonOptions } from './options.js';
import { LastGoodDir, restoreFor } from './last-good.js';
import { rolloutGateFor, rolloutPlaceOf, type RolloutGate } from './rollout-gate.js';
import { RevisionWatch } from './revision-watch.js';
import { isConverged, type RunBook, type RunOutcome } from './runs.js';

/** the daemon's options this part reads (the file, secrets, host selection, the gate's and the check's natives) */
export interface RevisionFollowingOptions extends Pick<
  DaemonOptions,
  'configPath' | 'env' | 'selection' | 'facts' | 'allowedSigners' | 'rollout' | 'verify'
> {
  host: DaemonEnv;
  reporter: Reporter;
  runs: RunBook;
  emit: (e: DaemonEvent) => void;
  wake: (reason: WakeReason) => void;
  /** what the other parts add to each read: tunnel health's (tunnels.ts), runtime limits, URL lists */
  readOptions: () => Pick<
    ConfigReadOptions,
    'down' | 'held' | 'profiles' | 'runtimeLimits' | 'urlList'
  >;
  /** the files to watch now (wakes.ts) */
  watch: (files: string[]) => void;
  /** the tunnels of `p` up now (tunnel health) */
  up: (p: Prepared | undefined) => ReadonlySet<string>;
  /** run `fn` on the daemon's queue */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** one run toward `p` (the caller holds the queue) */
  reconcile: (reason: WakeReason, p: Prepared) => Promise<RunOutcome>;
}

export class RevisionFollowing {
  readonly config: ConfigFollower;
  private readonly rollout: RolloutGate;
  /** the check of a new revision after its apply (revision-watch.ts) */
  private readonly verify: RevisionWatch;
  /** where the last good revision is copied to when HEAD is held back */
  private readonly lastGood: LastGoodDir;

  constructor(private readonly o: RevisionFollowingOptions) {
    const { host, reporter, emit } = o;
    this.lastGood = new LastGoodDir(host.state.dir);
    // the first sightings live in the rollout record the revision watch keeps (made below)
    this.rollout = rolloutGateFor(o, emit, () => o.wake('config'), {
      get: (revision, now) => this.verify.sighting(revision, now),
      set: (revision, at) => this.verify.sighted(revision, at),
    });
    this.config = new ConfigFollower({
      file: o.configPath ?? host.applied.load()?.configFile,
      read: (file, api, origin) =>
        readConfig(file, {
          platform: async () => (await host.ready(), host.platform!),
          // `{env:}` secrets only for the file the daemon was started with (ENV_REFUSED)
          // (a last good revision's copy reads as the file it is a copy of: `origin`)
          ownEnv:
            !api && o.configPath !== undefined && resolve(o.configPath) === resolve(origin ?? file),
          env: o.env,
          selection: o.selection,
          ...o.readOptions(),
          state: host.state,
          reporter,
          facts: o.facts,
          exec: host.exec,
        }),
      emit,
      watch: o.watch,
      host: o.selection?.host,
      admit: (c) => this.rollout.admit({ ...c, config: c.prepared.config }),
      waiting: (file) =>
        reporter.report({
          type: 'info',
          message: waitingMessage(file, host.applied.load()?.configFile),
        }),
      held: (revision, content) => this.verify.holdBack(revision, content),
      restore: restoreFor({
        verify: () => this.verify,
        admit: (c) => this.rollout.admit({ ...c, config: c.prepared.config }),
        dir: this.lastGood,
        emit,
      }),
    });
    this.verify = new RevisionWatch({
      state: host.state,
      emit,
      up: () => o.up(this.config.good?.prepared),
      revert: (to) =>
        o.exclusive(async () => {
          this.config.follow(to.source.file, to.source.prepared, to.revision);
          const r = await o.reconcile('revision-rejected', to.source.prepared);
          if (!isConverged(r.outcome))
            throw r.error ?? new AwgError('driver', `the run ended ${r.outcome}`);
        }),
      ...(o.verify ?? {}),
    });
  }

  /** what status says of the config: the follower's, the rollout gate's hold, the after-apply check */
  state(): ConfigState | undefined {
    const c = this.rollout.stateOf(this.config.state(this.o.runs));
    return c && { ...c, ...this.verify.state() };
  }

  /**
   * The observation record (`awg fleet status`): what the host has, observed on the daemon's
   * queue, with the revision it runs at, the rejected ones and the rollout's record.
   */
  async observation(): Promise<ObservationRecord> {
    const { host } = this.o;
    await host.ready();
    return this.o.exclusive(async () => {
      const last = host.applied.load();
      const r = await observationOf(host.envFor({ claims: last?.claims ?? host.claims() }), last, {
        // the facts the running config was realised with (probed anew when none is followed)
        facts: this.config.good?.prepared.facts,
        warn: (message) => host.reporter.report({ type: 'warning', message }),
      });
      const state = this.state();
      const rec = withRollout(r, state, this.verify.state());
      const rollout = rolloutPlaceOf(state);
      return rollout ? { ...rec, rollout } : rec;
    });
  }

  /** a run toward `p` converged: the check of its revision starts (when it is a new one) */
  converged(p: Prepared, changes: number, upBefore: ReadonlySet<string>): void {
    this.verify.converged({
      revision: this.config.state(this.o.runs)?.revision,
      source: this.config.good?.prepared === p ? this.config.good : { file: p.file, prepared: p },
      changes,
      upBefore,
    });
  }

  close(): void {
    this.rollout.close();
    this.verify.close();
    this.lastGood.close();
  }
}
