/**
 * scripts/apt-repo.sh against apt itself: a repository built from two tiny packages (awg 0.1.0
 * in stable; 0.1.0 and 0.1.1 in beta), signed with a test key, served over HTTP on the loopback
 * of a namespace of ours; apt-get runs in that namespace with a private configuration
 * (APT_CONFIG: its own sources, lists, cache, dpkg status, no trusted keys but the source's
 * `Signed-By:`), so the machine's apt state is never read or touched. `awg update` runs the same
 * way (its apt commands inherit APT_CONFIG).
 */
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateCommand, type UpdateResult } from '../../src/cli/commands/update.js';
import type { Io } from '../../src/cli/output.js';
import { parseAptPolicy } from '../../src/util/package-update.js';
import { NsExec } from '../helpers/exec.js';
import {
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  useNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

const skip = requireNetnsPrereqs(['dpkg-scanpackages', 'dpkg-deb', 'gpg', 'gpgconf', 'apt-get']);
const SCRIPT = join(import.meta.dirname, '../../scripts/apt-repo.sh');
const SERVER = join(import.meta.dirname, '../helpers/apt-repo-server.mjs');

/** resolves with the first line of `p`'s stdout matching `re` (the server says when it listens) */
function lineOf(p: NsProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        p.child.stdout?.off('data', onData);
        resolve(m);
      }
    };
    p.child.stdout?.on('data', onData);
    void p.exited.then((code) => reject(new Error(`server exited ${code}: ${p.output()}`)));
  });
}

function io(): Io & { text: () => string } {
  let out = '';
  return {
    out: (s: string) => void (out += s),
    err: (s: string) => void (out += s),
    text: () => out,
  } as Io & { text: () => string };
}

describe.skipIf(skip)('apt repository: scripts/apt-repo.sh with apt-get', () => {
  const ns = useNetns('aptr');
  let dir: string;
  let arch: string;
  let server: NsProcess;
  let base: string;
  let debs: { v0: string; v1: string };
  const repo = () => join(dir, 'www/repo');
  const repoSh = (...args: string[]) =>
    run('bash', [SCRIPT, ...args], { allowFail: true, timeoutMs: 60_000 });

  /** a package with a control file and nothing else */
  async function fakeDeb(version: string, description = 'test package'): Promise<string> {
    const root = join(dir, `pkg-${version}-${description.length}`);
    mkdirSync(join(root, 'DEBIAN'), { recursive: true });
    writeFileSync(
      join(root, 'DEBIAN/control'),
      `Package: awg\nVersion: ${version}\nArchitecture: ${arch}\nMaintainer: t <t@localhost>\nDescription: ${description}\n`,
    );
    const out = join(dir, `awg_${version}_${arch}-${description.length}.deb`);
    await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, out]);
    return out;
  }

  /** a private apt: one deb822 source, empty lists, a dpkg status holding awg `installed` */
  function privateApt(name: string, uri: string, suite: string, keyring: string) {
    const root = join(dir, `apt-${name}`);
    for (const d of [
      'lists/partial',
      'cache/archives/partial',
      'etc/trusted.gpg.d',
      'etc/conf.d',
      'etc/pref.d',
    ])
      mkdirSync(join(root, d), { recursive: true });
    const source = join(root, 'etc/awg.sources');
    const setSuite = (s: string) =>
      writeFileSync(
        source,
        `Types: deb\nURIs: ${uri}\nSuites: ${s}\nComponents: main\nSigned-By: ${keyring}\n`,
      );
    setSuite(suite);
    writeFileSync(
      join(root, 'status'),
      `Package: awg\nStatus: install ok installed\nPriority: optional\nSection: net\nInstalled-Size: 1\nMaintainer: t <t@localhost>\nArchitecture: ${arch}\nVersion: 0.1.0\nDescription: test package\n`,
    );
    const conf = join(root, 'apt.conf');
    writeFileSync(
      conf,
      [
        `Dir::State "${root}";`,
        `Dir::State::lists "${root}/lists";`,
        `Dir::State::status "${root}/status";`,
        `Dir::Cache "${root}/cache";`,
        `Dir::Etc::sourcelist "${source}";`,
        'Dir::Etc::sourceparts "-";',
        'Dir::Etc::trusted "/dev/null";',
        `Dir::Etc::trustedparts "${root}/etc/trusted.gpg.d";`,
        `Dir::Etc::preferencesparts "${root}/etc/pref.d";`,
        `Dir::Etc::parts "${root}/etc/conf.d";`,
        'APT::Sandbox::User "root";',
        'Acquire::Languages "none";',
        'Acquire::http::Proxy "DIRECT";',
        '',
      ].join('\n'),
    );
    const env = { ...process.env, APT_CONFIG: conf, LC_ALL: 'C' };
    return {
      source,
      setSuite,
      env,
      update: () =>
        nsExec(ns.name, 'apt-get', ['update'], { allowFail: true, env, timeoutMs: 60_000 }),
      policy: async () =>
        parseAptPolicy((await run('apt-cache', ['policy', 'awg'], { env })).stdout),
      awgUpdate: async (...flags: string[]) => {
        const o = io();
        const code = await updateCommand(
          o,
          {
            json: true,
            source,
            ...(flags.includes('--no-refresh') ? { refresh: false } : {}),
          },
          { exec: new NsExec(ns.name), pkgRoot: '/usr/lib/awg/app', env },
        );
        return { code, doc: JSON.parse(o.text()) as UpdateResult };
      },
    };
  }

  beforeAll(async () => {
    dir = tempDir('awg-apt-repo-');
    arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
    const [v0, v1] = [await fakeDeb('0.1.0'), await fakeDeb('0.1.1')];
    debs = { v0, v1 };
    const made = await repoSh(
      '--repo',
      repo(),
      '--test-key',
      join(dir, 'key'),
      '--arch',
      arch,
      '--suite',
      'stable',
      v0,
      '--suite',
      'beta',
      v0,
      v1,
    );
    expect(made.code, made.stderr).toBe(0);
    // the same packages signed by another key
    const other = await repoSh(
      '--repo',
      join(dir, 'www/other'),
      '--test-key',
      join(dir, 'key2'),
      '--arch',
      arch,
      '--suite',
      'stable',
      v0,
    );
    expect(other.code, other.stderr).toBe(0);
    server = nsSpawn(ns.name, process.execPath, [SERVER, join(dir, 'www'), '127.0.0.1', '0']);
    const port = (await lineOf(server, /listening (\d+)/))[1];
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await server?.kill();
    for (const k of ['key', 'key2'])
      if (dir)
        await run('gpgconf', ['--homedir', join(dir, k), '--kill', 'all'], { allowFail: true });
  });

  it('lays out pool/, dists/<suite>/ and the signed Release files', () => {
    expect(readdirSync(join(repo(), 'pool/main/a/awg')).sort()).toEqual([
      `awg_0.1.0_${arch}.deb`,
      `awg_0.1.1_${arch}.deb`,
    ]);
    const release = readFileSync(join(repo(), 'dists/beta/Release'), 'utf8');
    expect(release).toMatch(
      /^Origin: awg\nLabel: awg\nSuite: beta\nCodename: beta\nDate: .+ UTC\n/,
    );
    expect(release).toContain(`main/binary-${arch}/Packages.gz`);
    expect(readFileSync(join(repo(), 'dists/beta/InRelease'), 'utf8')).toMatch(
      /^-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n/,
    );
    const stable = readFileSync(join(repo(), `dists/stable/main/binary-${arch}/Packages`), 'utf8');
    expect(stable.match(/^Version: .*/gm)).toEqual(['Version: 0.1.0']);
  });

  it('apt accepts the signature; the suite decides what awg update offers, and back', async () => {
    const apt = privateApt(
      'good',
      `${base}/repo/`,
      'stable',
      join(repo(), 'awg-archive-keyring.gpg'),
    );
    const u = await apt.update();
    expect(u.code, u.stdout + u.stderr).toBe(0);
    expect(u.stdout).toMatch(/stable InRelease/);
    expect(await apt.policy()).toMatchObject({ installed: '0.1.0', candidate: '0.1.0' });
    let r = await apt.awgUpdate();
    expect(r.code).toBe(0);
    expect(r.doc).toMatchObject({
      installed: '0.1.0',
      candidate: '0.1.0',
      updateAvailable: false,
      suites: ['stable'],
      refreshed: true,
    });

    apt.setSuite('beta');
    r = await apt.awgUpdate();
    expect(r.code).toBe(2);
    expect(r.doc).toMatchObject({
      candidate: '0.1.1',
      updateAvailable: true,
      suites: ['beta'],
      command: 'awg update --apply',
    });
    expect(server.output()).toMatch(/GET \/repo\/dists\/beta\/InRelease 200/);

    apt.setSuite('stable');
    r = await apt.awgUpdate();
    expect(r.code).toBe(0);
    expect(r.doc).toMatchObject({ candidate: '0.1.0', updateAvailable: false });
    // without a refresh: apt's lists as they are, no request
    const before = server.output().length;
    r = await apt.awgUpdate('--no-refresh');
    expect(r.doc).toMatchObject({ candidate: '0.1.0', refreshed: false });
    expect(server.output().length).toBe(before);
  });

  it('REJECTS a tampered Packages file (its hash is not the signed Release one)', async () => {
    const t = join(dir, 'www/tampered');
    cpSync(repo(), t, { recursive: true });
    const p = join(t, `dists/beta/main/binary-${arch}/Packages`);
    // same size: only the SHA256 the signed Release names can tell
    const evil = readFileSync(p, 'utf8').replace(
      'Description: test package',
      'Description: evil package',
    );
    writeFileSync(p, evil);
    writeFileSync(`${p}.gz`, gzipSync(evil));
    const apt = privateApt(
      'tampered',
      `${base}/tampered/`,
      'beta',
      join(repo(), 'awg-archive-keyring.gpg'),
    );
    const u = await apt.update();
    expect(u.code).not.toBe(0);
    expect(u.stdout + u.stderr).toMatch(/Hash Sum mismatch|unexpected size/);
    // nothing of it reached apt's lists
    expect((await apt.policy()).candidate).toBe('0.1.0');
    expect((await apt.policy()).versions.map((v) => v.version)).toEqual(['0.1.0']);
    const r = await apt.awgUpdate();
    expect(r.code).toBe(1);
  });

  it('REJECTS a repository signed by a key other than the Signed-By one', async () => {
    const apt = privateApt(
      'wrongkey',
      `${base}/other/`,
      'stable',
      join(repo(), 'awg-archive-keyring.gpg'),
    );
    const u = await apt.update();
    expect(u.code).not.toBe(0);
    expect(u.stdout + u.stderr).toMatch(/NO_PUBKEY/);
    expect(u.stdout + u.stderr).toMatch(/is not signed/);
    expect(
      (await apt.policy()).versions.filter((v) => v.origins.some((o) => o.uri.startsWith('http'))),
    ).toEqual([]);
    const o = io();
    const code = await updateCommand(
      o,
      { source: apt.source },
      { exec: new NsExec(ns.name), pkgRoot: '/usr/lib/awg/app', env: apt.env },
    );
    expect(code).toBe(1);
    expect(o.text()).toMatch(/apt-get update of .* failed: .*NO_PUBKEY/);
    expect(o.text()).not.toMatch(/0\.1\.1/);
  });

  it('is incremental: a new package joins a suite, the pool keeps the older ones; a published version never changes', async () => {
    const again = await repoSh(
      '--repo',
      repo(),
      '--test-key',
      join(dir, 'key'),
      '--arch',
      arch,
      '--suite',
      'stable',
      debs.v1,
    );
    expect(again.code, again.stderr).toBe(0);
    const stable = readFileSync(join(repo(), `dists/stable/main/binary-${arch}/Packages`), 'utf8');
    expect(stable.match(/^Version: .*/gm)).toEqual(['Version: 0.1.0', 'Version: 0.1.1']);
    const beta = readFileSync(join(repo(), `dists/beta/main/binary-${arch}/Packages`), 'utf8');
    expect(beta.match(/^Version: .*/gm)).toEqual(['Version: 0.1.0', 'Version: 0.1.1']);
    const apt = privateApt(
      'incremental',
      `${base}/repo/`,
      'stable',
      join(repo(), 'awg-archive-keyring.gpg'),
    );
    const r = await apt.awgUpdate();
    expect(r.code).toBe(2);
    expect(r.doc.candidate).toBe('0.1.1');

    const changed = await repoSh(
      '--repo',
      repo(),
      '--test-key',
      join(dir, 'key'),
      '--suite',
      'stable',
      await fakeDeb('0.1.0', 'other contents'),
    );
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/exists with other contents/);
  });

  it('signs only with a key it is given', async () => {
    const r = await repoSh(
      '--repo',
      join(dir, 'nokey'),
      '--suite',
      'stable',
      join(repo(), `pool/main/a/awg/awg_0.1.0_${arch}.deb`),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no signing key/);
  });
});
