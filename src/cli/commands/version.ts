/**
 * `awg version [--check] [--json]`: this awg, its runtime, and — with --check — the newest
 * release the package manager it was installed with knows: `apt-cache policy awg` for the
 * Debian package (reads apt's local lists: no network; `apt-get update` refreshes them), `npm
 * view NAME version repository` for an npm install (npm asks its registry; offline it fails and
 * awg says so). awg itself opens no connection. Exit 0 current, 2 a newer release is available,
 * 1 the check could not be made.
 *
 * An npm name is anyone's who publishes it first (`awg` is not published by us): a release is
 * offered only when the registry's package names the repository this awg's package.json names,
 * and never when ours names none (then npm is not asked at all). The repository field is the
 * publisher's own claim, so this rules out a stranger's package that happens to have the name,
 * not one made to look like ours; a scoped name whose scope we own would rule out both.
 */
import { readFileSync, realpathSync } from 'node:fs';
import module from 'node:module';
import { PACKAGE_ROOT, packagePath } from '../../util/package-root.js';
import { toAwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import { printError, type Io } from '../output.js';
import { safeLine } from '../../util/sanitize.js';
import { VERSION } from '../../util/package-version.js';
import {
  aptCheck,
  compareVersions,
  installKind,
  parseAptPolicy,
  type InstallKind,
} from '../../util/package-update.js';

export interface VersionOptions {
  check?: boolean;
  json?: boolean;
}

export { compareVersions, installKind, parseAptPolicy, type InstallKind };

export interface CheckResult {
  installedWith: InstallKind;
  current: string;
  newest?: string;
  updateAvailable?: boolean;
  /** how to update, when a newer release is there */
  command?: string;
  /** why there is no answer */
  unknown?: string;
}

/** Who this awg is on npm: its package.json's name and repository. */
export interface NpmIdentity {
  name: string;
  repository?: unknown;
}

export function ownNpmIdentity(
  pkgJsonText = readFileSync(packagePath('package.json'), 'utf8'),
): NpmIdentity {
  const p = JSON.parse(pkgJsonText) as { name: string; repository?: unknown };
  return { name: p.name, ...(p.repository !== undefined ? { repository: p.repository } : {}) };
}

const SHORTHAND_HOSTS: Record<string, string> = {
  github: 'github.com',
  gitlab: 'gitlab.com',
  bitbucket: 'bitbucket.org',
};

/**
 * A package.json `repository` (a URL, npm's `owner/repo` or `github:owner/repo` shorthand, or
 * `{ url }`) as `host/path`, lower case, without scheme, user, `.git` or trailing slash: what two
 * spellings of one repository have in common. Undefined when there is no URL in it.
 */
export function repositoryKey(repo: unknown): string | undefined {
  const url =
    typeof repo === 'string'
      ? repo
      : repo && typeof repo === 'object' && typeof (repo as { url?: unknown }).url === 'string'
        ? (repo as { url: string }).url
        : undefined;
  let s = url?.trim().toLowerCase();
  if (!s) return undefined;
  const short = /^(github|gitlab|bitbucket):([^/]+\/[^/]+)$/.exec(s);
  if (short) s = `${SHORTHAND_HOSTS[short[1]!]}/${short[2]}`;
  else if (/^[\w.-]+\/[\w.-]+$/.test(s)) s = `github.com/${s}`;
  s = s
    .replace(/[?#].*$/, '')
    .replace(/^git\+/, '')
    .replace(/^[a-z][a-z0-9+.-]*:\/\//, '') // scheme
    .replace(/^[^@/]+@/, '') // user (git@, ssh user)
    .replace(/^([^/:]+):(?!\d)/, '$1/') // scp-like host:path
    .replace(/^([^/:]+):\d+\//, '$1/') // port
    .replace(/\/+$/, '')
    .replace(/\.git$/, '');
  return s.includes('/') ? s : undefined;
}

/** What npm printed on failure: its JSON error's code and summary, else its first error line. */
function npmFailure(r: { code: number; stdout: string; stderr: string }): string {
  try {
    const e = (JSON.parse(r.stdout) as { error?: { code?: unknown; summary?: unknown } }).error;
    if (e && typeof e.summary === 'string')
      return typeof e.code === 'string' ? `${e.code}: ${e.summary}` : e.summary;
  } catch {
    // not JSON: the text below
  }
  const lines = (r.stderr || r.stdout)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /\berr(or|!)/i.test(l)) ?? lines[0] ?? `exit ${r.code}`;
}

export async function checkForUpdate(
  exec: Exec,
  kind: InstallKind,
  current = VERSION,
  own: NpmIdentity = ownNpmIdentity(),
): Promise<CheckResult> {
  const base = { installedWith: kind, current };
  if (kind === 'checkout')
    return { ...base, unknown: 'run from a source checkout: no package manager to ask (git pull)' };
  if (kind === 'deb') {
    try {
      const a = await aptCheck(exec, current);
      return {
        ...base,
        newest: a.candidate,
        updateAvailable: a.updateAvailable,
        ...(a.updateAvailable ? { command: 'awg update --apply' } : {}),
      };
    } catch (e) {
      return { ...base, unknown: toAwgError(e).message };
    }
  }
  const ours = repositoryKey(own.repository);
  if (!ours)
    return {
      ...base,
      unknown: `this awg's package.json names no repository, so no release on npm can be tied to it (the npm package "${own.name}" may be anyone's); npm was not asked`,
    };
  const r = await exec.read(
    'npm',
    [
      'view',
      own.name,
      'version',
      'repository',
      '--json',
      '--fetch-timeout=10000',
      '--fetch-retries=0',
    ],
    { allowFail: true, timeoutMs: 30_000 },
  );
  let view: { version?: unknown; repository?: unknown } | undefined;
  try {
    const v = JSON.parse(r.stdout) as unknown;
    // one object for one version; an array when the tag matched several
    const last = Array.isArray(v) ? v.at(-1) : v;
    view =
      last && typeof last === 'object' && !('error' in last) ? (last as typeof view) : undefined;
  } catch {
    view = undefined;
  }
  const newest =
    typeof view?.version === 'string' && /^\d+\.\d+\.\d+/.test(view.version)
      ? view.version
      : undefined;
  if (r.code !== 0 || !newest)
    return {
      ...base,
      unknown: `npm could not tell the newest release of ${own.name} (offline?): ${npmFailure(r)}`,
    };
  const theirs = repositoryKey(view?.repository);
  if (theirs !== ours)
    return {
      ...base,
      unknown: `the npm package "${own.name}" names ${theirs ? `the repository ${theirs}` : 'no repository'}, not this awg's (${ours}): it is not offered as an update`,
    };
  const newer = compareVersions(newest, current) > 0;
  return {
    ...base,
    newest,
    updateAvailable: newer,
    ...(newer ? { command: `npm install --global ${own.name}@${newest}` } : {}),
  };
}

export async function versionCommand(
  io: Io,
  o: VersionOptions,
  deps: { exec?: Exec; pkgRoot?: string; npmIdentity?: NpmIdentity } = {},
): Promise<number> {
  const runtime = `node ${process.version}, ${process.platform} ${process.arch}`;
  if (!o.check) {
    // the directory of V8's compile cache in use (bin/awg.js; Node 22.8+ can say), else null
    const compileCache =
      (module as { getCompileCacheDir?: () => string | undefined }).getCompileCacheDir?.() ?? null;
    io.out(
      o.json
        ? JSON.stringify({
            version: VERSION,
            node: process.version,
            platform: process.platform,
            arch: process.arch,
            compileCache,
          }) + '\n'
        : `awg ${VERSION} (${runtime})\n`,
    );
    return 0;
  }
  try {
    const pkgRoot = deps.pkgRoot ?? realpathSync(PACKAGE_ROOT);
    const exec =
      deps.exec ??
      new (await import('../../util/exec.js')).ProcessExec(
        (await import('../../util/reporter.js')).silentReporter,
      );
    const r = await checkForUpdate(
      exec,
      installKind(pkgRoot),
      VERSION,
      deps.npmIdentity ?? ownNpmIdentity(),
    );
    // what apt and npm print (their errors, a registry's repository field) is not ours: safeLine
    if (o.json) io.out(JSON.stringify({ ...r, node: process.version }, null, 2) + '\n');
    else if (r.unknown) io.out(`awg ${r.current} (${r.installedWith}): ${safeLine(r.unknown)}\n`);
    else if (r.updateAvailable)
      io.out(
        `awg ${r.current} (${r.installedWith}): ${safeLine(`${r.newest} is available — ${r.command}`)}\n`,
      );
    else
      io.out(
        `awg ${r.current} (${r.installedWith}) is the newest release ${r.installedWith === 'deb' ? 'apt knows' : 'on npm'}\n`,
      );
    return r.unknown ? 1 : r.updateAvailable ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e));
    return 1;
  }
}
