/**
 * The booted hosts' Debian 12 root: made once by mmdebstrap (≈ 25–45 s, ≈ 300 MB) from the
 * machine's own Debian mirror and kept in /var/cache/awg-test under a key of its recipe, then
 * copied per boot (lab.ts), so what a scenario installs dies with its copy.
 *
 * The recipe is what a user's host has: systemd as PID 1, systemd-resolved owning
 * /etc/resolv.conf (the stub), NetworkManager owning the interfaces, D-Bus, iproute2 and
 * nftables (awg's package dependencies, so `apt install ./awg.deb` needs no download), and
 * netbase (/etc/protocols). What would make a boot differ from run to run is pinned: a fixed
 * machine-id, resolved without fallback servers, LLMNR or mDNS (nothing but the lab's
 * resolver is ever asked), apt's and fstrim's timers masked, a persistent journal (a reboot's
 * previous boot stays readable).
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runProcess } from '../../src/util/exec.js';

/** a command that must succeed (this module is also run outside vitest: make-root.ts) */
async function run(cmd: string, args: string[], o: { timeoutMs: number }): Promise<void> {
  const r = await runProcess(cmd, args, { ...o, allowFail: true });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
}

export const ROOT_CACHE = process.env.AWG_HOST_CACHE || '/var/cache/awg-test';

export const ROOT_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'systemd-resolved',
  'dbus',
  'network-manager',
  'iproute2',
  'nftables',
  'curl',
  'ca-certificates',
  'procps',
  'iputils-ping',
  'kmod',
  'netbase',
  'gnupg',
];

/** bumped when the tweaks below change, so a cached root of an older recipe is not used */
const TWEAKS_VERSION = 1;

const MASKED = [
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'fstrim.timer',
  'e2scrub_all.timer',
  'dpkg-db-backup.timer',
];

/** deb lines of the machine's own Debian mirror (deb822 or one-line sources), bookworm suites */
export function mirrorLines(): string[] {
  const dir = '/etc/apt/sources.list.d';
  const uris = new Set<string>();
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.sources') || f.endsWith('.list'))
        .map((f) => join(dir, f))
    : [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^URIs:\s*(\S+)/gm)) uris.add(m[1]!);
    for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s/gm)) uris.add(m[1]!);
  }
  const debian = [...uris].filter((u) => /debian\/?$/.test(u) && !u.includes('security'));
  const security = [...uris].filter((u) => /debian-security\/?$/.test(u));
  const main = debian[0] ?? 'http://deb.debian.org/debian';
  const sec = security[0] ?? 'http://deb.debian.org/debian-security';
  return [
    `deb ${main} bookworm main`,
    `deb ${main} bookworm-updates main`,
    `deb ${sec} bookworm-security main`,
  ];
}

function recipeKey(): string {
  return createHash('sha256')
    .update(JSON.stringify({ p: ROOT_PACKAGES, t: TWEAKS_VERSION }))
    .digest('hex')
    .slice(0, 12);
}

function tweak(root: string): void {
  writeFileSync(join(root, 'etc/machine-id'), '5a1f0e2b7c3d4e6f8a9b0c1d2e3f4a5b\n');
  writeFileSync(join(root, 'etc/hostname'), 'awghost\n');
  mkdirSync(join(root, 'etc/systemd/resolved.conf.d'), { recursive: true });
  writeFileSync(
    join(root, 'etc/systemd/resolved.conf.d/lab.conf'),
    '[Resolve]\nFallbackDNS=\nLLMNR=no\nMulticastDNS=no\n',
  );
  for (const t of MASKED) {
    const p = join(root, 'etc/systemd/system', t);
    rmSync(p, { force: true });
    symlinkSync('/dev/null', p);
  }
  mkdirSync(join(root, 'var/log/journal'), { recursive: true });
}

/**
 * The prepared base root (a directory, never booted itself): built when its recipe's cache
 * entry is missing. Returns its path.
 */
export async function ensureRoot(): Promise<string> {
  const dir = join(ROOT_CACHE, `host-root-${recipeKey()}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  mkdirSync(ROOT_CACHE, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  const tar = `${dir}.tar`;
  const t0 = Date.now();
  await run(
    'mmdebstrap',
    [
      '--quiet',
      '--variant=minbase',
      `--include=${ROOT_PACKAGES.join(',')}`,
      'bookworm',
      tar,
      ...mirrorLines(),
    ],
    // a bound on a hang, not a timing: CI builds the root in the idle CPU cgroup beside the netns
    // tests (scripts/test.sh), where it gets only the CPU nobody else wants until the unit runs
    // end (~27 minutes in, on 2 cores); with both cores busy there it ran past 600 s (≈ 70 s of
    // CPU, 25–45 s quiet)
    { timeoutMs: 3_600_000 },
  );
  mkdirSync(dir);
  await run('tar', ['-xf', tar, '-C', dir], { timeoutMs: 900_000 });
  rmSync(tar, { force: true });
  tweak(dir);
  writeFileSync(join(dir, '.complete'), `built in ${Date.now() - t0} ms\n`);
  return dir;
}
