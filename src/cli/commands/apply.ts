import { AwgError, ERROR_KINDS, toAwgError, type ErrorKind } from '../../errors.js';
import { executeChanges } from '../../reconciler/execute.js';
import { applyContextOf } from '../../reconciler/observe.js';
import { toPlanDocument } from '../../model/plan-document.js';
import { prepare } from '../../pipeline/prepare.js';
import { cacheSourceIn } from '../../pipeline/list-update.js';
import { parsedListsIn } from '../../config/parsed-lists.js';
import { VERSION } from '../../util/package-version.js';
import { converge } from '../../pipeline/converge.js';
import { hostEnv, stateDirFrom } from '../../pipeline/host.js';
import { FileStateStore } from '../../util/state.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import { loadPlatform, type Platform } from '../../resources/registry.js';
import type { Exec } from '../../util/exec.js';
import {
  JsonReporter,
  notPrepared,
  printError,
  printIssues,
  TextReporter,
  type Io,
} from '../output.js';
import { renderPlan } from '../render-plan.js';
import { knownElements } from '../../resources/firewall/set-elements.js';
import { resolve } from 'node:path';
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import {
  needsDaemon,
  planFromDocument,
  type DaemonChoice,
  type DaemonClient,
} from '../../daemon/client.js';
import { viaDaemon } from '../via-daemon.js';
import { selectionGiven, selectionOrExit, type SelectionOptions } from '../selection.js';
import { MAX_CONFIRM_TIMEOUT_SEC } from '../../daemon/confirm.js';
import { takeOwnership } from '../../pipeline/owner.js';
import type { OwnerCommand, OwnerLock, OwnerNatives } from '../../resources/owner-lock.js';

export interface ApplyOptions extends DaemonChoice, SelectionOptions {
  file: string;
  dryRun?: boolean;
  json?: boolean;
  stateDir?: string;
  verbose?: boolean;
  /** netplan-try: revert unless `awg confirm` arrives within this many seconds (daemon only) */
  confirmTimeout?: string;
}

/**
 * Converge the host. Everything is validated before anything is touched; the reconcile
 * machine verifies after applying and rolls back (or ends fail-closed) on failure.
 */
/**
 * `deps`: the host to act on (default: this machine's platform and processes; tests pass
 * the macOS host model).
 */
export interface HostDeps {
  platform?: Platform;
  exec?: Exec;
  /**
   * the owner lock's kernel calls (resources/owner-lock.ts); by default the platform's when
   * acting on this host, none when a test injects a host (`platform` or `exec`)
   */
  ownerNatives?: OwnerNatives;
}

/**
 * Take the owner lock for a command that changes this host (pipeline/owner.ts); undefined when
 * `deps` is a test's host without one. Throws AwgError('conflict') naming the other owner.
 */
export async function ownHost(
  io: Io,
  platform: Platform,
  deps: HostDeps,
  o: { command: OwnerCommand; stateDir?: string | undefined },
): Promise<OwnerLock | undefined> {
  const natives = deps.ownerNatives ?? (deps.platform || deps.exec ? undefined : platform);
  if (!natives) return undefined;
  return takeOwnership(natives, { ...o, warn: (m) => io.err(`warning: ${m}\n`) });
}

export async function applyCommand(io: Io, o: ApplyOptions, deps: HostDeps = {}): Promise<number> {
  let confirmTimeoutSec: number | undefined;
  if (o.confirmTimeout !== undefined) {
    confirmTimeoutSec = Number(o.confirmTimeout);
    if (
      !Number.isInteger(confirmTimeoutSec) ||
      confirmTimeoutSec < 1 ||
      confirmTimeoutSec > MAX_CONFIRM_TIMEOUT_SEC
    ) {
      printError(
        io,
        new AwgError(
          'invalid-config',
          `--confirm-timeout ${o.confirmTimeout}: expected whole seconds from 1 to ${MAX_CONFIRM_TIMEOUT_SEC}`,
        ),
      );
      return 1;
    }
  }
  const d = await viaDaemon(io, o, (client) =>
    selectionGiven(o) ? selectionRefused(io) : applyViaDaemon(io, o, client, confirmTimeoutSec),
  );
  if ('code' in d) return d.code;
  if (confirmTimeoutSec !== undefined) {
    const err = needsDaemon('--confirm-timeout', d.reason);
    printError(io, err);
    return err.exitCode;
  }
  const platform = deps.platform ?? (await loadPlatform());
  const sel = await selectionOrExit(io, o);
  if (typeof sel === 'number') return sel;
  // refused before anything is read from the host or written to the state directory
  if (!o.dryRun && (platform.engineHost === 'daemon' || platform.perApp === 'flow-router')) {
    const peek = await loadConfigFile(o.file, sel.selection ? { selection: sel.selection } : {});
    const err = peek.config ? daemonOnly(platform, o.file, peek.config, d.reason) : undefined;
    if (err) {
      printError(io, err);
      return err.exitCode;
    }
  }
  let lock: OwnerLock | undefined;
  try {
    lock = o.dryRun
      ? undefined
      : await ownHost(io, platform, deps, { command: 'apply', stateDir: o.stateDir });
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
  try {
    return await applyDirect(io, o, deps, platform, sel, d.reason);
  } finally {
    lock?.release();
  }
}

async function applyDirect(
  io: Io,
  o: ApplyOptions,
  deps: HostDeps,
  platform: Platform,
  sel: Exclude<Awaited<ReturnType<typeof selectionOrExit>>, number>,
  noDaemon: string,
): Promise<number> {
  const state = new FileStateStore(stateDirFrom(o.stateDir));
  // the host's fingerprint key, in the state directory (created on first use; see util/host-key.ts)
  const fingerprintKey = () =>
    fingerprintKeyOf(state, { onReplaced: (why) => io.err(`warning: ${why}\n`) });
  const r = await prepare(o.file, {
    platform,
    probe: true,
    state,
    persistEndpoints: !o.dryRun,
    fingerprintKey,
    // lists by URL: their cached copies (`awg lists update` fetches them)
    urlList: cacheSourceIn(state.dir),
    // list files: the last parse of each (the same bytes: no parse), kept for the next apply
    parsedLists: parsedListsIn(state.dir, { program: VERSION, write: !o.dryRun }),
    ...sel,
    ...(deps.exec ? { exec: deps.exec } : {}),
  });
  if (!r.ok) return notPrepared(io, o.file, r);
  const p = r.prepared;
  printIssues(io, p.issues);
  // the backstop of the peek above (the same file, loaded once more)
  const refused = o.dryRun ? undefined : daemonOnly(platform, o.file, p.config, noDaemon);
  if (refused) {
    printError(io, refused);
    return refused.exitCode;
  }
  const reporter = o.json ? new JsonReporter(io) : new TextReporter(io, o.verbose);
  const env = await hostEnv({
    platform,
    state,
    dryRun: o.dryRun,
    reporter,
    claims: p.claims,
    secrets: p.secrets,
    ...(deps.exec ? { exec: deps.exec } : {}),
  });
  try {
    const ctx = await converge(env, env.applied, p, { dryRun: Boolean(o.dryRun) });
    if (ctx.plan && !o.json && ctx.outcome !== 'unchanged')
      io.err(renderPlan(ctx.plan, { colour: io.colour, elements: knownElements }));
    // a dry run (its Exec is dry): what each change would run
    if (ctx.outcome === 'planned' && ctx.plan)
      await executeChanges(ctx.plan.changes, env.drivers, applyContextOf(env));
    const summary = {
      outcome: ctx.outcome,
      mutations: env.exec.mutations,
      changed: ctx.changed,
      error: ctx.error ? { kind: ctx.error.kind, message: ctx.error.message } : undefined,
      rollbackErrors: ctx.rollbackErrors.map((e) => e.message),
      plan: ctx.plan ? toPlanDocument(ctx.plan, o.file) : undefined,
    };
    if (o.json) io.out(JSON.stringify(summary, null, 2) + '\n');
    switch (ctx.outcome) {
      case 'unchanged':
        if (!o.json) io.out('No changes. The system matches the configuration.\n');
        return 0;
      case 'planned':
        if (!o.json) io.out('Dry run: nothing was changed.\n');
        return 0;
      case 'converged':
        if (!o.json)
          io.out(
            `Applied: ${ctx.changed} change(s), ${env.exec.mutations} mutation(s); verified.\n`,
          );
        return 0;
      default: {
        const err = ctx.error ?? new AwgError('bug', `apply ended ${ctx.outcome}`);
        printError(io, err);
        for (const e of ctx.rollbackErrors) io.err(`awg: rollback error: ${e.message}\n`);
        if (ctx.outcome === 'rolled-back')
          io.err('awg: the host was returned to its state before this apply.\n');
        if (ctx.outcome === 'failed-closed')
          io.err(
            'awg: apply failed; traffic is blocked (fail-closed) until a successful apply or `awg down`.\n',
          );
        if (ctx.outcome === 'failed' && ctx.rollbackErrors.length)
          io.err(
            'awg: apply failed and could not be rolled back; run `awg status` and `awg down`.\n',
          );
        return err.exitCode;
      }
    }
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

/**
 * What of `c` only a long-running awg can run on this platform: tunnels where engines live
 * only in the daemon (Platform.engineHost, macOS: a utun lives as long as the socket of the
 * process that opened it), path rules where the flow router applies them (Platform.perApp,
 * macOS: the router runs in the daemon). A one-shot apply of such a config stops before
 * anything is touched (not an engine started and then rolled back) and says how to run it.
 */
export function daemonOnly(
  platform: Pick<Platform, 'os' | 'engineHost' | 'perApp'>,
  file: string,
  c: Pick<Config, 'tunnels' | 'rules'>,
  why: string,
): AwgError | undefined {
  const tunnels = platform.engineHost === 'daemon' ? Object.keys(c.tunnels) : [];
  const rules =
    platform.perApp === 'flow-router'
      ? c.rules.filter((r) => r.enabled).map((r, i) => r.name ?? `#${i + 1}`)
      : [];
  if (!tunnels.length && !rules.length) return undefined;
  const os = platform.os === 'darwin' ? 'macOS' : platform.os;
  const what = [
    ...(tunnels.length
      ? [
          `a tunnel's engine holds its utun, which lives only as long as the process that opened it, so the engines of ${tunnels.join(', ')} must live in the daemon`,
        ]
      : []),
    ...(rules.length
      ? [
          `path rules (${rules.join(', ')}) are applied per connection by the flow router, which runs in the daemon`,
        ]
      : []),
  ];
  return new AwgError(
    'unsupported',
    `awg apply without the awg daemon cannot run this config on ${os} (${why}): ${what.join('; ')}; nothing was changed`,
    {
      hint: `install and start the daemon with \`sudo awg service install --config ${resolve(file)}\` (then \`awg apply -f ${file}\` goes through it), or run \`sudo awg up -f ${file}\` in the foreground; \`awg apply --dry-run\` shows the plan without either`,
    },
  );
}

/**
 * Client mode: the daemon applies (it reads the file and its secrets itself). Same output
 * and exit codes as direct mode; the mutation log (`[#] …`) stays in the daemon's journal.
 * The file is checked here first so config errors print as file:line:col, as in direct mode.
 */
async function applyViaDaemon(
  io: Io,
  o: ApplyOptions,
  c: DaemonClient,
  confirmTimeoutSec: number | undefined,
): Promise<number> {
  const l = await loadConfigFile(o.file);
  // a config with overlays is checked by the daemon, for the host it selects overlays for
  // (its --host/--labels); this machine's selection could differ
  if (!l.selection) {
    printIssues(io, l.issues);
    if (!l.config) {
      io.err(`${o.file}: invalid configuration; nothing was applied\n`);
      return 1;
    }
  }
  try {
    const r = await c.apply({
      configPath: resolve(o.file),
      ...(o.dryRun ? { dryRun: true } : {}),
      ...(confirmTimeoutSec ? { confirmTimeoutSec } : {}),
    });
    const plan = { ...r.plan, config: o.file };
    const changed = r.outcome === 'unchanged' ? 0 : plan.changes.length;
    if (r.plan && !o.json && r.outcome !== 'unchanged' && r.error?.kind !== 'invalid-config')
      io.err(renderPlan(planFromDocument(plan), { colour: io.colour }));
    if (o.json)
      io.out(
        JSON.stringify(
          {
            outcome: r.outcome,
            mutations: r.mutations,
            changed,
            error: r.error,
            rollbackErrors: [],
            plan,
            ...(r.confirmDeadline ? { confirmDeadline: r.confirmDeadline } : {}),
          },
          null,
          2,
        ) + '\n',
      );
    switch (r.outcome) {
      case 'unchanged':
      case 'planned':
      case 'converged':
        if (!o.json) {
          if (r.outcome === 'unchanged')
            io.out('No changes. The system matches the configuration.\n');
          else if (r.outcome === 'planned') io.out('Dry run: nothing was changed.\n');
          else io.out(`Applied: ${changed} change(s), ${r.mutations} mutation(s); verified.\n`);
          if (r.confirmDeadline)
            io.out(
              `Confirm with \`awg confirm\` by ${r.confirmDeadline}, or the change is reverted.\n`,
            );
        }
        return 0;
      default: {
        const err = r.error
          ? new AwgError(
              r.error.kind in ERROR_KINDS ? (r.error.kind as ErrorKind) : 'bug',
              r.error.message,
            )
          : new AwgError('bug', `apply ended ${r.outcome}`);
        printError(io, err);
        if (err.kind === 'invalid-config')
          io.err(`${o.file}: invalid configuration; nothing was applied\n`);
        if (r.outcome === 'rolled-back')
          io.err('awg: the host was returned to its state before this apply.\n');
        if (r.outcome === 'failed-closed')
          io.err(
            'awg: apply failed; traffic is blocked (fail-closed) until a successful apply or `awg down`.\n',
          );
        return err.exitCode;
      }
    }
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

/** The daemon renders configs for the host it was started for (`awg daemon --host/--labels`). */
async function selectionRefused(io: Io): Promise<number> {
  const err = new AwgError(
    'invalid-config',
    'the awg daemon selects overlays for its own host (its --host/--labels flags); drop --host/--labels/--labels-file, or add --direct to apply without the daemon',
  );
  printError(io, err);
  return err.exitCode;
}
