/**
 * `awg version [--check] [--json]`: this awg, its runtime, and — with --check — the newest
 * release the package manager it was installed with knows: `apt-cache policy awg` for the
 * Debian package (reads apt's local lists: no network; `apt-get update` refreshes them), `npm
 * view awg version` for an npm install (npm asks its registry; offline it fails and awg says
 * so). awg itself opens no connection. Exit 0 current, 2 a newer release is available, 1 the
 * check could not be made.
 */
import { realpathSync } from 'node:fs';
import { sep } from 'node:path';
import { PACKAGE_ROOT } from '../../util/package-root.js';
import { toAwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import { printError, type Io } from '../output.js';
import { VERSION } from '../package-version.js';

export interface VersionOptions {
  check?: boolean;
  json?: boolean;
}

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

/** `apt-cache policy awg` → Installed and Candidate (the newest apt knows). */
export function parseAptPolicy(text: string): { installed?: string; candidate?: string } {
  const get = (k: string) => new RegExp(`^\\s*${k}:\\s*(\\S+)`, 'm').exec(text)?.[1];
  const clean = (v: string | undefined) => (v && v !== '(none)' ? v : undefined);
  return { ...(clean(get('Installed')) ? { installed: clean(get('Installed'))! } : {}), ...(clean(get('Candidate')) ? { candidate: clean(get('Candidate'))! } : {}) };
}

export async function checkForUpdate(exec: Exec, kind: InstallKind, current = VERSION): Promise<CheckResult> {
  const base = { installedWith: kind, current };
  if (kind === 'checkout') return { ...base, unknown: 'run from a source checkout: no package manager to ask (git pull)' };
  if (kind === 'deb') {
    const r = await exec.read('apt-cache', ['policy', 'awg'], { allowFail: true, timeoutMs: 20_000, env: { ...process.env, LC_ALL: 'C' } });
    if (r.code !== 0) return { ...base, unknown: `apt-cache policy awg failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}` };
    const p = parseAptPolicy(r.stdout);
    if (!p.candidate) return { ...base, unknown: 'apt knows no release of awg (is its repository in the sources? run apt-get update)' };
    // dpkg's own order for Debian versions (epochs, revisions, ~)
    const gt = await exec.read('dpkg', ['--compare-versions', p.candidate, 'gt', p.installed ?? current], { allowFail: true, timeoutMs: 10_000 });
    const newer = gt.code === 0;
    return { ...base, newest: p.candidate, updateAvailable: newer, ...(newer ? { command: 'apt-get update && apt-get install --only-upgrade awg' } : {}) };
  }
  const r = await exec.read('npm', ['view', 'awg', 'version', '--json', '--fetch-timeout=10000', '--fetch-retries=0'], { allowFail: true, timeoutMs: 30_000 });
  let newest: string | undefined;
  try {
    const v = JSON.parse(r.stdout) as unknown;
    newest = typeof v === 'string' ? v : Array.isArray(v) && typeof v.at(-1) === 'string' ? (v.at(-1) as string) : undefined;
  } catch {
    newest = undefined;
  }
  if (r.code !== 0 || !newest || !/^\d+\.\d+\.\d+/.test(newest)) return { ...base, unknown: `npm could not tell the newest release (offline?): ${(r.stderr || r.stdout).trim().split('\n').find((l) => l.trim()) ?? `exit ${r.code}`}` };
  const newer = compareVersions(newest, current) > 0;
  return { ...base, newest, updateAvailable: newer, ...(newer ? { command: 'npm install --global awg@latest' } : {}) };
}

export async function versionCommand(io: Io, o: VersionOptions, deps: { exec?: Exec; pkgRoot?: string } = {}): Promise<number> {
  const runtime = `node ${process.version}, ${process.platform} ${process.arch}`;
  if (!o.check) {
    io.out(o.json ? JSON.stringify({ version: VERSION, node: process.version, platform: process.platform, arch: process.arch }) + '\n' : `awg ${VERSION} (${runtime})\n`);
    return 0;
  }
  try {
    const pkgRoot = deps.pkgRoot ?? realpathSync(PACKAGE_ROOT);
    const exec = deps.exec ?? new (await import('../../util/exec.js')).ProcessExec((await import('../../util/reporter.js')).silentReporter);
    const r = await checkForUpdate(exec, installKind(pkgRoot));
    if (o.json) io.out(JSON.stringify({ ...r, node: process.version }, null, 2) + '\n');
    else if (r.unknown) io.out(`awg ${r.current} (${r.installedWith}): ${r.unknown}\n`);
    else if (r.updateAvailable) io.out(`awg ${r.current} (${r.installedWith}): ${r.newest} is available — ${r.command}\n`);
    else io.out(`awg ${r.current} (${r.installedWith}) is the newest release ${r.installedWith === 'deb' ? 'apt knows' : 'on npm'}\n`);
    return r.unknown ? 1 : r.updateAvailable ? 2 : 0;
  } catch (e) {
    printError(io, toAwgError(e));
    return 1;
  }
}
