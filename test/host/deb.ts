/**
 * The package under test and the host bed's prerequisites. AWG_HOST_DEB names a .deb that
 * was built already (scripts/test.sh builds one for the package smokes and the host tests);
 * otherwise scripts/build-deb.sh builds one from this checkout, once per test run.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../helpers/awg.js';
import { run } from '../helpers/netns.js';

const TOOLS = [
  'systemd-nspawn',
  'mmdebstrap',
  'tcpdump',
  'dnsmasq',
  'wireguard-go',
  'wg',
  'nsenter',
];

/**
 * Undefined when the host bed can run here, else why not. Under CI a missing prerequisite is a
 * failure (scripts/setup.sh installs them), never a skip.
 */
export function requireHostPrereqs(): string | undefined {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('linux');
  else {
    if (process.getuid?.() !== 0) missing.push('root');
    for (const t of TOOLS) {
      try {
        execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      } catch {
        missing.push(t);
      }
    }
    if (!existsSync('/sys/fs/cgroup/unified') && !existsSync('/sys/fs/cgroup/cgroup.controllers'))
      missing.push('a cgroup v2 mount');
  }
  if (missing.length === 0) return undefined;
  const reason = `host-bed prerequisites missing: ${missing.join(', ')}`;
  if (process.env.CI && !['0', 'false'].includes(process.env.CI))
    throw new Error(`${reason} (CI is set, so this is a failure; scripts/setup.sh installs them)`);
  return reason;
}

let built: string | undefined;

/** the .deb to install: AWG_HOST_DEB, or one built from this checkout (once per process) */
export async function ensureDeb(): Promise<string> {
  const given = process.env.AWG_HOST_DEB;
  if (given) {
    if (!existsSync(given)) throw new Error(`AWG_HOST_DEB=${given} does not exist`);
    return given;
  }
  if (built) return built;
  const version = (
    JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const out = join(REPO_ROOT, '.test-results/host-deb');
  const arch = execFileSync('dpkg', ['--print-architecture']).toString().trim();
  const deb = join(out, `awg_${version}_${arch}.deb`);
  // reuse a package built from the same sources (newer than every file under src/)
  const newest = Number(
    execFileSync('sh', ['-c', `find src share bin -type f -printf '%T@\\n' | sort -n | tail -1`], {
      cwd: REPO_ROOT,
    })
      .toString()
      .trim(),
  );
  if (!existsSync(deb) || statSync(deb).mtimeMs / 1000 < newest) {
    await run('bash', [join(REPO_ROOT, 'scripts/build-deb.sh'), out], {
      timeoutMs: 900_000,
      env: { ...process.env, AWG_DEB_COMPRESS: 'gzip:1' },
    });
  }
  built = deb;
  return deb;
}
