/**
 * awg from its apt repository on a booted Debian 12 host, as the README says: the keyring in
 * /usr/share/keyrings, a deb822 source with `Signed-By:`, `apt update && apt install awg`; then,
 * with a full-tunnel kill switch applied and the daemon running, `awg update --check` and
 * `--apply` to a newer version, and beta and back.
 *
 * The repository (scripts/apt-repo.sh, a test key) holds two packages: this checkout's (0.1.0)
 * and the same one repacked as 0.1.1 (bumpedDeb); it is served on the lab's
 * bridge address. Decision (docs/platform-linux.md "Packages and updates"): a repository on
 * the LAN is reachable under a kill switch only with `allowLan` — shown here first without it
 * (apt's packets are dropped, `awg update` has no answer), then with it. The bridge capture
 * holds nothing of the host's but link control, WireGuard to the endpoint and the HTTP to the
 * repository, through the upgrade (the daemon restarts; the kill switch table stays).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/awg.js';
import { nsSpawn, run, type NsProcess } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { Capture, type Frame } from './capture.js';
import { ensureDeb, requireHostPrereqs } from './deb.js';
import { Host, LAN, Lab, until } from './lab.js';

const skip = requireHostPrereqs();
const REPO_PORT = 8090;
const SOURCES = '/etc/apt/sources.list.d/awg.sources';
const KEYRING = '/usr/share/keyrings/awg-archive-keyring.gpg';
const NEXT = '0.1.1';

/**
 * The package under test repacked as `version` (its control file and the app's package.json,
 * which `awg version` reads; md5sums kept true where it has them): the same files and maintainer scripts, so an
 * upgrade to it runs exactly what an upgrade between two releases runs, in seconds instead of
 * a second build-deb. AWG_HOST_DEB_NEXT names one built otherwise.
 */
async function bumpedDeb(first: string, version: string, out: string): Promise<string> {
  if (process.env.AWG_HOST_DEB_NEXT) return process.env.AWG_HOST_DEB_NEXT;
  const tree = join(tempDir('awg-apt-bump-'), 'tree');
  await run('dpkg-deb', ['-R', first, tree], { timeoutMs: 300_000 });
  const control = join(tree, 'DEBIAN/control');
  writeFileSync(
    control,
    readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`),
  );
  const rel = 'usr/lib/awg/app/package.json';
  const pj = join(tree, rel);
  writeFileSync(
    pj,
    JSON.stringify({ ...JSON.parse(readFileSync(pj, 'utf8')), version }, null, 2) + '\n',
  );
  const sums = join(tree, 'DEBIAN/md5sums');
  if (existsSync(sums)) {
    const md5 = createHash('md5').update(readFileSync(pj)).digest('hex');
    const line = new RegExp(`^[0-9a-f]{32}  ${rel}$`, 'm');
    writeFileSync(sums, readFileSync(sums, 'utf8').replace(line, `${md5}  ${rel}`));
  }
  mkdirSync(out, { recursive: true });
  const deb = join(out, basename(first).replace(/_[^_]+_([^_]+\.deb)$/, `_${version}_$1`));
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '-b', tree, deb], {
    timeoutMs: 300_000,
  });
  return deb;
}

/** the host's frames that are neither link control, WireGuard, nor HTTP to the repository */
const outside = (frames: Frame[]) =>
  frames.filter(
    (f) =>
      !f.allowed &&
      !new RegExp(`> ${LAN.router.replace(/\./g, '\\.')}\\.${REPO_PORT}: `).test(f.line),
  );
const toRepo = (frames: Frame[]) =>
  frames.filter((f) => f.line.includes(`${LAN.router}.${REPO_PORT}: `));

describe.skipIf(skip)('awg from its apt repository on a booted Debian 12 host', () => {
  let lab: Lab;
  let host: Host;
  let server: NsProcess | undefined;
  let config: string;
  const source = (suite: string) =>
    host.write(
      SOURCES,
      `Types: deb\nURIs: http://${LAN.router}:${REPO_PORT}/\nSuites: ${suite}\nComponents: main\nSigned-By: ${KEYRING}\n`,
    );
  const awgUpdate = async (...flags: string[]) => {
    const r = await host.run(['awg', 'update', '--json', ...flags], {
      allowFail: true,
      timeoutMs: 300_000,
    });
    return { code: r.code, doc: JSON.parse(r.stdout) as Record<string, unknown>, out: r.out };
  };

  beforeAll(async () => {
    const dir = tempDir('awg-apt-host-');
    const first = await ensureDeb();
    const next = await bumpedDeb(first, NEXT, join(dir, 'next'));
    const repo = join(dir, 'www');
    const made = await run(
      'bash',
      [
        join(REPO_ROOT, 'scripts/apt-repo.sh'),
        '--repo',
        repo,
        '--test-key',
        join(dir, 'key'),
        '--suite',
        'stable',
        first,
        '--suite',
        'beta',
        first,
        next,
      ],
      { timeoutMs: 120_000 },
    );
    expect(made.code).toBe(0);
    lab = await Lab.create('ap');
    server = nsSpawn(lab.ns, process.execPath, [
      join(REPO_ROOT, 'test/helpers/apt-repo-server.mjs'),
      repo,
      LAN.router,
      String(REPO_PORT),
    ]);
    await until(
      'the repository server to listen',
      async () => /listening/.test(server!.output()),
      20_000,
      20,
    );
    host = await Host.boot(lab);
    // the root's Debian mirrors are not reachable from the lab: awg's source is the only one
    writeFileSync(host.path('/etc/apt/sources.list'), '');
    mkdirSync(host.path('/usr/share/keyrings'), { recursive: true });
    copyFileSync(join(repo, 'awg-archive-keyring.gpg'), host.path(KEYRING));
    source('stable');
    await host.run(['sh', '-c', 'apt update && apt install -y awg'], {
      timeoutMs: 600_000,
      env: { DEBIAN_FRONTEND: 'noninteractive' },
    });
    // (systemd-run would expand a `${Version}` format: the default `name<TAB>version` instead)
    expect((await host.run(['dpkg-query', '-W', 'awg'])).stdout).toBe('awg\t0.1.0\n');
    // a full tunnel with the strict kill switch, under the daemon of the shipped unit
    host.write('/etc/awg/keys/home.key', lab.keys.host.privateKey + '\n', 0o600);
    config = lab.fullTunnelConfig(
      readFileSync(join(REPO_ROOT, 'examples/wireguard-full-tunnel.yaml'), 'utf8'),
    );
    host.write('/etc/awg/config.yaml', config);
    await host.run(['awg', 'apply', '-f', '/etc/awg/config.yaml']);
    await host.run(['systemctl', 'enable', '--now', 'awg.service']);
  }, 1_800_000);

  afterAll(async () => {
    await server?.kill();
    await host?.destroy();
    await lab?.destroy();
  });

  it('installed from the repository; a LAN repository is unreachable under the strict kill switch', async () => {
    const c = await Capture.start(lab.ns);
    const r = await awgUpdate('--check');
    expect(r.code, r.out).toBe(1);
    expect(String(r.doc.unknown)).toMatch(/apt-get update of .* failed/);
    const frames = await c.stop();
    expect(toRepo(frames)).toEqual([]);
    expect(outside(frames)).toEqual([]);
  });

  it('with allowLan: --check offers 0.1.1 on beta only; --apply upgrades with the kill switch closed throughout; back to stable keeps it', async () => {
    host.write(
      '/etc/awg/config.yaml',
      config.replace('killSwitch: on', 'killSwitch: { enabled: true, allowLan: true }'),
    );
    await host.run(['awg', 'apply', '-f', '/etc/awg/config.yaml']);
    const c = await Capture.start(lab.ns);
    let r = await awgUpdate();
    expect(r.code, r.out).toBe(0);
    expect(r.doc).toMatchObject({ installed: '0.1.0', candidate: '0.1.0', updateAvailable: false });

    source('beta');
    r = await awgUpdate('--check');
    expect(r.code, r.out).toBe(2);
    expect(r.doc).toMatchObject({ candidate: NEXT, updateAvailable: true, suites: ['beta'] });
    r = await awgUpdate('--apply');
    expect(r.code, r.out).toBe(0);
    expect(r.doc).toMatchObject({ installed: '0.1.0', upgradedTo: NEXT });
    expect((await host.run(['awg', 'version'])).stdout).toMatch(new RegExp(`^awg ${NEXT} `));
    expect((await host.run(['nft', 'list', 'table', 'inet', 'awg'])).stdout).toMatch(/kill-switch/);
    await until(
      'the restarted daemon to answer',
      async () => (await host.run(['awg', 'status'], { allowFail: true })).code !== 1 || undefined,
      60_000,
      200,
    );

    source('stable');
    r = await awgUpdate('--check');
    expect(r.code, r.out).toBe(0);
    expect(r.doc).toMatchObject({ installed: NEXT, updateAvailable: false });

    const frames = await c.stop();
    expect(toRepo(frames).length).toBeGreaterThan(0);
    expect(outside(frames)).toEqual([]);
  });
});
