/**
 * `awg diff`: the plan `apply` would execute, against this host (or a recorded observation).
 *
 * Start-up is most of its cost, so the observation's `ip`/`nft` reads are started before the
 * pipeline's modules (zod, yaml, the drivers) load and the config is validated, and run on
 * the other core meanwhile (PrefetchExec); only the modules the daemon check needs load first.
 */
import type { HostDeps } from './apply.js';
import { toAwgError } from '../../errors.js';
import { ProcessExec } from '../../util/exec.js';
import { parsedListsIn } from '../../config/parsed-lists.js';
import { VERSION } from '../../util/package-version.js';
import { silentReporter } from '../../util/reporter.js';
import { PrefetchExec } from '../../resources/prefetch.js';
import { DEFAULT_NFT_TABLE } from '../../resources/reads.js';
import { knownElements } from '../../resources/firewall/set-elements.js';
import { loadPlatform, observeReads } from '../../resources/registry.js';
import { viaDaemon } from '../via-daemon.js';
import { printError, printIssues, warningReporter, type Io } from '../output.js';
import type { DaemonChoice, DaemonClient } from '../../daemon/client.js';
import { selectionGiven, selectionOf, type SelectionOptions } from '../selection.js';

export interface DiffOptions extends DaemonChoice, SelectionOptions {
  file: string;
  json?: boolean;
  stateDir?: string;
  /** plan against a recorded observation instead of this host */
  observed?: string;
  skipSecrets?: boolean;
  verbose?: boolean;
}

/** exit 0 no changes, 2 changes, 1 error (Terraform's -detailed-exitcode) */
export async function diffCommand(io: Io, o: DiffOptions, deps: HostDeps = {}): Promise<number> {
  // a recorded observation is planned here: the daemon only plans against the host
  if (o.observed) return diffObserved(io, o, o.observed);
  // so is a config for another host (--host, --labels, --os): the daemon renders for its own
  if (!selectionGiven(o)) {
    const d = await viaDaemon(
      io,
      o,
      (client) => diffViaDaemon(io, o, client),
      () => 1,
    );
    if ('code' in d) return d.code;
  }
  try {
    const reads = observeReads(DEFAULT_NFT_TABLE);
    const exec =
      deps.exec ??
      (reads.length ? new PrefetchExec(new ProcessExec(silentReporter), reads) : undefined);
    const [
      { hasChanges },
      { observeAndPlan },
      { prepare },
      { hostEnv, stateDirFrom },
      platform,
      { renderPlan },
      { fingerprintKeyOf },
      { FileStateStore },
      lists,
    ] = await Promise.all([
      import('../../model/change.js'),
      import('../../pipeline/diff.js'),
      import('../../pipeline/prepare.js'),
      import('../../pipeline/host.js'),
      deps.platform ?? loadPlatform(),
      import('../render-plan.js'),
      import('../../util/host-key.js'),
      import('../../util/state.js'),
      listParts(),
    ]);
    // endpoint answers of earlier runs are read, never written: diff changes nothing
    const state = new FileStateStore(stateDirFrom(o.stateDir));
    // the host's fingerprint key, in the state directory (created on first use; see util/host-key.ts)
    const fingerprintKey = () =>
      fingerprintKeyOf(state, { onReplaced: (why) => io.err(`warning: ${why}\n`) });
    const selection = await selectionOf(o);
    const r = await prepare(o.file, {
      platform,
      skipSecrets: o.skipSecrets,
      probe: true,
      state,
      persistEndpoints: false,
      fingerprintKey,
      urlList: lists.cacheSourceIn(state.dir),
      parsedLists: parsedListsIn(state.dir, { program: VERSION, write: false }),
      ...(selection ? { selection } : {}),
      ...(deps.exec ? { exec: deps.exec } : {}),
    });
    if (!r.ok) {
      printIssues(io, r.issues);
      return 1;
    }
    const p = r.prepared;
    printIssues(io, p.issues);
    const env = await hostEnv({
      platform,
      stateDir: o.stateDir,
      reporter: warningReporter(io),
      claims: p.claims,
      exec,
    });
    const plan = await observeAndPlan(env, env.applied, p.desired);
    const planned = lists.planLists(p);
    if (o.json) {
      const { toPlanDocument } = await import('../../model/plan-document.js');
      io.out(JSON.stringify(toPlanDocument(plan, o.file, planned), null, 2) + '\n');
    } else {
      io.out(renderPlan(plan, { colour: io.colour, verbose: o.verbose, elements: knownElements }));
      io.out(lists.listsText(planned));
    }
    return hasChanges(plan) ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e));
    return 1;
  }
}

/** Client mode: the daemon plans against the host it manages; same output and exit codes. */
async function diffViaDaemon(io: Io, o: DiffOptions, c: DaemonClient): Promise<number> {
  try {
    const [{ resolve }, { loadConfigFile }, { planFromDocument }, { renderPlan }] =
      await Promise.all([
        import('node:path'),
        import('../../config/load.js'),
        import('../../daemon/client.js'),
        import('../render-plan.js'),
      ]);
    const l = await loadConfigFile(o.file);
    // a config with overlays is checked by the daemon, for the host it selects overlays for
    if (!l.selection) {
      printIssues(io, l.issues);
      if (!l.config) return 1;
    }
    const r = await c.diff({ configPath: resolve(o.file) });
    const doc = { ...r.plan, config: o.file };
    if (o.json) io.out(JSON.stringify(doc, null, 2) + '\n');
    else {
      io.out(renderPlan(planFromDocument(doc), { colour: io.colour, verbose: o.verbose }));
      io.out((await listParts()).listsText(doc.lists));
    }
    return r.changes ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e));
    return 1;
  }
}

/**
 * `--observed FILE`: plan against a recorded observation (pipeline/observation.ts), anywhere:
 * no root, no state directory, no probing of this machine. The record's facts stand in for
 * the host's. Secrets are read unless --skip-secrets, fingerprinted with the state
 * directory's key (comparable on the host that recorded it); with --skip-secrets (CI without
 * keys) they are assumed unchanged. Without a record's last-applied resources, the state
 * directory's are used when there are any.
 */
async function diffObserved(io: Io, o: DiffOptions, file: string): Promise<number> {
  try {
    const [
      { readTextFile, LIMITS },
      { hasChanges },
      { plan: makePlan },
      { prepare },
      { renderPlan },
      obs,
      { stateDirFrom },
      { FileStateStore },
      { AppliedStore },
      { fingerprintKeyOf },
      lists,
    ] = await Promise.all([
      import('../../util/files.js'),
      import('../../model/change.js'),
      import('../../reconciler/plan.js'),
      import('../../pipeline/prepare.js'),
      import('../render-plan.js'),
      import('../../pipeline/observation.js'),
      import('../../pipeline/host.js'),
      import('../../util/state.js'),
      import('../../pipeline/applied.js'),
      import('../../util/host-key.js'),
      listParts(),
    ]);
    const state = new FileStateStore(stateDirFrom(o.stateDir));
    const fingerprintKey = () =>
      fingerprintKeyOf(state, { onReplaced: (why) => io.err(`warning: ${why}\n`) });
    const selection = await selectionOf(o);
    const rec = obs.parseObservation(await readTextFile(file, { maxBytes: LIMITS.observed }), file);
    const platform = await loadPlatform((selection?.os ?? process.platform) as NodeJS.Platform);
    // the host's cgroup root (an environment setting there) names its per-app objects
    const env = rec.cgroupRoot ? { ...process.env, AWG_CGROUP_ROOT: rec.cgroupRoot } : process.env;
    const r = await prepare(o.file, {
      platform,
      env,
      skipSecrets: o.skipSecrets,
      fingerprintKey,
      urlList: lists.cacheSourceIn(state.dir),
      parsedLists: parsedListsIn(state.dir, { program: VERSION, write: false }),
      ...(rec.facts ? { facts: rec.facts } : {}),
      ...(selection ? { selection } : {}),
    });
    if (!r.ok) {
      printIssues(io, r.issues);
      return 1;
    }
    const p = r.prepared;
    printIssues(io, p.issues);
    const unread = obs.assumeUnreadSecretsUnchanged(p.desired, rec.observed);
    let lastApplied = rec.lastApplied;
    if (!lastApplied) {
      try {
        lastApplied = new AppliedStore(state).load()?.resources;
      } catch {
        /* no readable state directory here: an initial plan */
      }
    }
    const plan = makePlan(p.desired, rec.observed, { lastApplied });
    io.err(
      `planned against ${file}${rec.host ? ` (host ${rec.host})` : ''}${rec.facts ? '' : ", without the host's facts"}${unread ? `; ${unread} secret value(s) not readable here, assumed unchanged` : ''}\n`,
    );
    const planned = lists.planLists(p);
    if (o.json) {
      const { toPlanDocument } = await import('../../model/plan-document.js');
      io.out(JSON.stringify(toPlanDocument(plan, o.file, planned), null, 2) + '\n');
    } else {
      io.out(renderPlan(plan, { colour: io.colour, verbose: o.verbose, elements: knownElements }));
      io.out(lists.listsText(planned));
    }
    return hasChanges(plan) ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e, 'invalid-config'));
    return 1;
  }
}

/** the parts of lists by URL a diff uses: the cache, a plan's lists and their lines */
async function listParts() {
  const [{ cacheSourceIn, planLists }, { planListLines }, { safeLine }] = await Promise.all([
    import('../../pipeline/list-update.js'),
    import('../render-lists.js'),
    import('../../util/sanitize.js'),
  ]);
  const listsText = (l: Parameters<typeof planListLines>[0]): string => {
    const lines = planListLines(l);
    return lines.length ? `lists:\n${lines.map((x) => `  ${safeLine(x)}\n`).join('')}` : '';
  };
  return { cacheSourceIn, planLists, listsText };
}
