/**
 * What the package manager says about awg's releases, for `awg version --check`, `awg update`
 * and the daemon's update watch (src/daemon/update-watch.ts): how this copy was installed, the
 * version order, and for the Debian package apt's view — `apt-cache policy awg` (apt's local
 * lists, no network), a refresh of awg's own source alone (`apt-get update` restricted to
 * /etc/apt/sources.list.d/awg.sources) and the upgrade of awg alone
 * (`apt-get install --only-upgrade awg`). awg never swaps its own files: apt does, with its
 * signature checks (the source's `Signed-By:` keyring) and the package's maintainer scripts.
 *
 * Every apt command runs with LC_ALL=C (its output is parsed) and the caller's environment
 * otherwise, so APT_CONFIG points a test at a private apt (test/netns/apt-repo.test.ts).
 */
import { existsSync } from 'node:fs';
import { sep } from 'node:path';
import { AwgError } from '../errors.js';
import type { Exec } from './exec.js';

export type InstallKind = 'deb' | 'npm' | 'checkout';

/** How this copy was installed, from where its files are (`pkgRoot`: the directory of package.json). */
export function installKind(pkgRoot: string): InstallKind {
  if (pkgRoot === '/usr/lib/awg' || pkgRoot.startsWith('/usr/lib/awg/')) return 'deb';
  if (pkgRoot.split(sep).includes('node_modules')) return 'npm';
  return 'checkout';
}

/** x.y.z[-pre] against x.y.z[-pre]: numeric parts, then a release above its pre-releases. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = v.trim().replace(/^v/, '').split('-', 2);
    return { nums: core.split('.').map((n) => Number.parseInt(n, 10) || 0), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

// ---- apt-cache policy ---------------------------------------------------------------------------

/** One line under a version of the version table: where apt knows it from. */
export interface AptOrigin {
  priority: number;
  /** the repository's URI, or the dpkg status file for the installed version */
  uri: string;
  /** `stable` of `stable/main`; absent for the status file */
  suite?: string;
}

export interface AptVersion {
  version: string;
  /** marked `***`: the installed one */
  installed: boolean;
  origins: AptOrigin[];
}

export interface AptPolicy {
  installed?: string;
  /** the version `apt install` would choose: the newest apt knows, after pinning */
  candidate?: string;
  versions: AptVersion[];
}

/**
 * `apt-cache policy awg` (LC_ALL=C) → Installed, Candidate and the version table. A package apt
 * does not know prints nothing (test/fixtures/linux/apt/policy-unknown-package.txt).
 */
export function parseAptPolicy(text: string): AptPolicy {
  const get = (k: string) => new RegExp(`^\\s*${k}:\\s*(\\S+)`, 'm').exec(text)?.[1];
  const clean = (v: string | undefined) => (v && v !== '(none)' ? v : undefined);
  const installed = clean(get('Installed'));
  const candidate = clean(get('Candidate'));
  const versions: AptVersion[] = [];
  const table = text.split(/^\s*Version table:\s*$/m)[1] ?? '';
  for (const line of table.split('\n')) {
    // " *** 0.1.0 100" or "     0.1.1 500": a version; "        500 URI suite/comp arch Packages": an origin
    const v = /^ (\*\*\*| {3}) (\S+) (-?\d+)\s*$/.exec(line);
    if (v) {
      versions.push({ version: v[2]!, installed: v[1] === '***', origins: [] });
      continue;
    }
    const o = /^\s+(-?\d+) (\S+)(?: (\S+))?/.exec(line);
    const last = versions.at(-1);
    if (o && last) {
      const suite = o[3]?.split('/')[0];
      last.origins.push({ priority: Number(o[1]), uri: o[2]!, ...(suite ? { suite } : {}) });
    }
  }
  return {
    ...(installed ? { installed } : {}),
    ...(candidate ? { candidate } : {}),
    versions,
  };
}

/** The suites (`stable`, `beta`) that offer `version`, in the table's order. */
export function suitesOf(p: AptPolicy, version: string): string[] {
  const suites = p.versions
    .filter((v) => v.version === version)
    .flatMap((v) => v.origins.flatMap((o) => (o.suite ? [o.suite] : [])));
  return [...new Set(suites)];
}

// ---- awg's apt source ---------------------------------------------------------------------------

/** Where the README puts awg's source (deb822); the one-line form is accepted too. */
export const AWG_APT_SOURCES = [
  '/etc/apt/sources.list.d/awg.sources',
  '/etc/apt/sources.list.d/awg.list',
] as const;

/** awg's apt source file, if one is configured. */
export function awgAptSource(exists: (p: string) => boolean = existsSync): string | undefined {
  return AWG_APT_SOURCES.find((p) => exists(p));
}

const aptEnv = (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => ({
  ...env,
  LC_ALL: 'C',
  DEBIAN_FRONTEND: 'noninteractive',
});

/** the first lines apt printed as errors or warnings (what to show the user) */
function aptFailure(r: { code: number; stdout: string; stderr: string }): string {
  const lines = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(E|W|Err):/.test(l));
  return lines.slice(0, 3).join('; ') || `exit ${r.code}`;
}

/**
 * Refresh the lists of awg's source only: the machine's other sources are neither fetched nor
 * (List-Cleanup=0) forgotten. Needs root, and the network to the repository.
 */
export async function refreshAwgSource(
  exec: Exec,
  source: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const r = await exec.read(
    'apt-get',
    [
      'update',
      '-q',
      '-o',
      `Dir::Etc::sourcelist=${source}`,
      '-o',
      'Dir::Etc::sourceparts=-',
      '-o',
      'APT::Get::List-Cleanup=0',
    ],
    { allowFail: true, timeoutMs: 120_000, env: aptEnv(env) },
  );
  // apt-get update exits 0 with "W: … not signed"-style warnings it chose to survive; a failed
  // fetch or signature of our source is an error either way
  if (r.code !== 0 || /^(E|Err):/m.test(`${r.stdout}\n${r.stderr}`))
    throw new AwgError(
      process.getuid?.() === 0 ? 'driver' : 'permission',
      `apt-get update of ${source} failed: ${aptFailure(r)}`,
    );
}

export interface AptCheck {
  /** the installed version (dpkg's), else the running one */
  installed: string;
  candidate: string;
  updateAvailable: boolean;
  /** the suites that offer the candidate (`stable`, `beta`) */
  suites: string[];
}

/**
 * What apt's lists, as they are, offer for awg: the candidate against the installed version in
 * dpkg's own order (epochs, revisions, `~`). Throws `driver` when apt knows no release of awg.
 */
export async function aptCheck(
  exec: Exec,
  current: string,
  env?: NodeJS.ProcessEnv,
): Promise<AptCheck> {
  const r = await exec.read('apt-cache', ['policy', 'awg'], {
    allowFail: true,
    timeoutMs: 20_000,
    env: aptEnv(env),
  });
  if (r.code !== 0)
    throw new AwgError(
      'driver',
      `apt-cache policy awg failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`,
    );
  const p = parseAptPolicy(r.stdout);
  if (!p.candidate)
    throw new AwgError(
      'driver',
      'apt knows no release of awg (is its repository in the sources? run apt-get update)',
    );
  const installed = p.installed ?? current;
  const gt = await exec.read('dpkg', ['--compare-versions', p.candidate, 'gt', installed], {
    allowFail: true,
    timeoutMs: 10_000,
  });
  return {
    installed,
    candidate: p.candidate,
    updateAvailable: gt.code === 0,
    suites: suitesOf(p, p.candidate),
  };
}

/**
 * apt's upgrade of awg alone (its dependencies as needed; nothing else is upgraded). The
 * package's postinst restarts a running awg.service; the kill switch table stays loaded
 * meanwhile (scripts/build-deb.sh). Returns the installed version afterwards.
 */
export async function aptUpgradeAwg(exec: Exec, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await exec.mutate('apt-get', ['install', '--only-upgrade', '-y', '-q', 'awg'], {
    allowFail: true,
    timeoutMs: 600_000,
    env: aptEnv(env),
  });
  if (r.code !== 0)
    throw new AwgError(
      process.getuid?.() === 0 ? 'driver' : 'permission',
      `apt-get install --only-upgrade awg failed: ${aptFailure(r)}`,
    );
  const q = await exec.read('dpkg-query', ['-W', '-f=${Version}', 'awg'], {
    allowFail: true,
    env: aptEnv(env),
  });
  return q.stdout.trim();
}
