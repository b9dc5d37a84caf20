/**
 * `awg update [--check | --apply] [--no-refresh] [--source FILE] [--json]`: the release awg's
 * CONFIGURED apt source offers, and the package manager's upgrade to it.
 *
 * --check (the default): refresh the lists of awg's source alone (root; the network to that
 * repository only), then compare apt's candidate with the installed version. --no-refresh reads
 * apt's lists as they are (no network; what `awg version --check` and the daemon read).
 * --apply: the same refresh, then `apt-get install --only-upgrade awg` — apt fetches, checks the
 * signature with the source's `Signed-By:` keyring and runs the package's scripts; awg never
 * replaces its own files. An npm install or a checkout is told how to update instead.
 *
 * Exit codes: --check 0 up to date, 2 an update is available, 1 no answer (no awg source, apt
 * failed, not a Debian install). --apply 0 upgraded or already the newest, 1 failed.
 */
import { realpathSync } from 'node:fs';
import { toAwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import { PACKAGE_ROOT } from '../../util/package-root.js';
import {
  aptCheck,
  aptUpgradeAwg,
  awgAptSource,
  installKind,
  refreshAwgSource,
  type AptCheck,
  type InstallKind,
} from '../../util/package-update.js';
import { safeLine } from '../../util/sanitize.js';
import { printError, type Io } from '../output.js';
import { VERSION } from '../../util/package-version.js';
import { checkForUpdate, ownNpmIdentity, type NpmIdentity } from './version.js';

export interface UpdateOptions {
  check?: boolean;
  apply?: boolean;
  /** commander's --no-refresh: false */
  refresh?: boolean;
  source?: string;
  json?: boolean;
}

/** What `awg update --json` prints. */
export interface UpdateResult {
  installedWith: InstallKind;
  installed: string;
  candidate?: string;
  updateAvailable?: boolean;
  /** the suites offering the candidate (`stable`, `beta`) */
  suites?: string[];
  /** awg's apt source that was read (and refreshed, with `refreshed`) */
  source?: string;
  refreshed?: boolean;
  /** --apply: the version installed afterwards */
  upgradedTo?: string;
  /** what to run instead (npm, checkout), or after --check */
  command?: string;
  /** why there is no answer */
  unknown?: string;
}

export interface UpdateDeps {
  exec?: Exec;
  pkgRoot?: string;
  /** apt's environment (tests: APT_CONFIG of a private apt) */
  env?: NodeJS.ProcessEnv;
  npmIdentity?: NpmIdentity;
  /** awg's configured apt source (default: awgAptSource()) */
  findSource?: () => string | undefined;
}

export async function updateCommand(
  io: Io,
  o: UpdateOptions,
  deps: UpdateDeps = {},
): Promise<number> {
  if (o.check && o.apply) {
    io.err('awg: --check and --apply exclude each other\n');
    return 1;
  }
  try {
    const kind = installKind(deps.pkgRoot ?? realpathSync(PACKAGE_ROOT));
    const exec =
      deps.exec ??
      new (await import('../../util/exec.js')).ProcessExec(
        (await import('../../util/reporter.js')).silentReporter,
      );
    const r = await update(exec, kind, o, deps);
    print(io, r, o);
    if (r.unknown) return 1;
    if (o.apply) return 0;
    return r.updateAvailable ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e));
    return 1;
  }
}

async function update(
  exec: Exec,
  kind: InstallKind,
  o: UpdateOptions,
  deps: UpdateDeps,
): Promise<UpdateResult> {
  const base = { installedWith: kind, installed: VERSION };
  if (kind !== 'deb') {
    // the npm and checkout answers are `awg version --check`'s; nothing here replaces files
    const v = await checkForUpdate(
      exec,
      kind,
      VERSION,
      deps.npmIdentity ?? (kind === 'npm' ? ownNpmIdentity() : { name: 'awg' }),
    );
    const how =
      kind === 'npm'
        ? `installed with npm: update with npm (${v.command ?? 'npm install --global awg@<version>'}); awg update --apply works for the Debian package only`
        : 'run from a source checkout: update it with git (git pull, npm ci, npm run build)';
    if (o.apply || v.unknown) return { ...base, unknown: v.unknown ? `${v.unknown}; ${how}` : how };
    return {
      ...base,
      ...(v.newest ? { candidate: v.newest } : {}),
      ...(v.updateAvailable !== undefined ? { updateAvailable: v.updateAvailable } : {}),
      ...(v.command ? { command: v.command } : {}),
    };
  }
  const source = o.source ?? (deps.findSource ?? awgAptSource)();
  if (!source)
    return {
      ...base,
      unknown:
        'no awg apt source is configured (/etc/apt/sources.list.d/awg.sources; README "Install, upgrade, uninstall"), or name one with --source',
    };
  const refresh = o.refresh !== false;
  let a: AptCheck;
  try {
    if (refresh) await refreshAwgSource(exec, source, deps.env);
    a = await aptCheck(exec, VERSION, deps.env);
  } catch (e) {
    return { ...base, source, refreshed: false, unknown: toAwgError(e).message };
  }
  const out: UpdateResult = {
    ...base,
    installed: a.installed,
    candidate: a.candidate,
    updateAvailable: a.updateAvailable,
    suites: a.suites,
    source,
    refreshed: refresh,
  };
  if (!o.apply) return a.updateAvailable ? { ...out, command: 'awg update --apply' } : out;
  if (!a.updateAvailable) return out;
  const now = await aptUpgradeAwg(exec, deps.env);
  return { ...out, upgradedTo: now || a.candidate, updateAvailable: false };
}

function print(io: Io, r: UpdateResult, o: UpdateOptions): void {
  if (o.json) {
    io.out(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  // apt's and npm's words are not ours: safeLine
  const from = r.suites?.length ? ` (${r.suites.join(', ')})` : '';
  if (r.unknown) io.out(`awg ${r.installed} (${r.installedWith}): ${safeLine(r.unknown)}\n`);
  else if (r.upgradedTo) io.out(`awg upgraded from ${r.installed} to ${safeLine(r.upgradedTo)}\n`);
  else if (r.updateAvailable)
    io.out(
      `awg ${r.installed}: ${safeLine(`${r.candidate ?? '?'}${from} is available — ${r.command ?? 'awg update --apply'}`)}\n`,
    );
  else
    io.out(
      `awg ${r.installed} is the newest release ${r.source ? `${safeLine(r.source)} offers${from}` : 'known'}${r.refreshed === false ? ' (lists not refreshed)' : ''}\n`,
    );
}
