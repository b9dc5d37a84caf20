import { describe, expect, it } from 'vitest';
import {
  checkForUpdate,
  compareVersions,
  installKind,
  ownNpmIdentity,
  parseAptPolicy,
  repositoryKey,
  versionCommand,
  type NpmIdentity,
} from '../../../src/cli/commands/version.js';
import { VERSION } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import type { Exec, ExecResult } from '../../../src/util/exec.js';

/** answers by command name; records what ran */
function exec(answers: Record<string, Partial<ExecResult>>): Exec & { ran: string[] } {
  const ran: string[] = [];
  const read = async (cmd: string, args: string[]) => {
    ran.push([cmd, ...args].join(' '));
    const a = answers[`${cmd} ${args[0] ?? ''}`.trim()] ??
      answers[cmd] ?? { code: 127, stderr: `${cmd}: not found` };
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
  return {
    ran,
    read,
    mutate: read,
    record: () => true,
    dryRun: false,
    mutations: 0,
  } as unknown as Exec & { ran: string[] };
}

const POLICY = (installed: string, candidate: string) =>
  `awg:\n  Installed: ${installed}\n  Candidate: ${candidate}\n  Version table:\n *** ${installed} 500\n`;

describe('awg version --check', () => {
  it('how it was installed, from where its files are', () => {
    expect(installKind('/usr/lib/awg')).toBe('deb');
    expect(installKind('/usr/local/lib/node_modules/awg')).toBe('npm');
    expect(installKind('/home/me/src/awg')).toBe('checkout');
  });

  it('versions compare numerically, a release above its pre-releases', () => {
    expect(compareVersions('0.10.0', '0.9.9')).toBe(1);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('1.0.0-rc.1', '1.0.0')).toBe(-1);
    expect(compareVersions('v2.0.0', '1.9.0')).toBe(1);
    expect(parseAptPolicy(POLICY('0.1.0-1', '0.2.0-1'))).toMatchObject({
      installed: '0.1.0-1',
      candidate: '0.2.0-1',
    });
    expect(parseAptPolicy('awg:\n  Installed: (none)\n  Candidate: (none)\n')).toEqual({
      versions: [],
    });
  });

  it('deb: apt-cache policy (local lists, no network) and dpkg --compare-versions decide', async () => {
    const newer = exec({
      'apt-cache policy': { stdout: POLICY('0.1.0-1', '0.2.0-1') },
      'dpkg --compare-versions': { code: 0 },
    });
    expect(await checkForUpdate(newer, 'deb', '0.1.0')).toEqual({
      installedWith: 'deb',
      current: '0.1.0',
      newest: '0.2.0-1',
      updateAvailable: true,
      command: 'awg update --apply',
    });
    expect(newer.ran).toEqual([
      'apt-cache policy awg',
      'dpkg --compare-versions 0.2.0-1 gt 0.1.0-1',
    ]);
    const same = exec({
      'apt-cache policy': { stdout: POLICY('0.1.0-1', '0.1.0-1') },
      'dpkg --compare-versions': { code: 1 },
    });
    expect((await checkForUpdate(same, 'deb', '0.1.0')).updateAvailable).toBe(false);
    const unknown = exec({ 'apt-cache policy': { stdout: 'N: Unable to locate package awg\n' } });
    expect((await checkForUpdate(unknown, 'deb')).unknown).toMatch(/apt knows no release of awg/);
  });

  // the identity an npm install compares the registry's package with (ours names no repository yet)
  const US: NpmIdentity = {
    name: 'awg',
    repository: { type: 'git', url: 'git+https://github.com/awg-dev/awg.git' },
  };
  const view = (version: string, repository: unknown) => ({
    'npm view': { stdout: JSON.stringify({ version, repository }) },
  });

  it('npm: npm view of our name; offline is reported, not guessed', async () => {
    const newer = exec(
      view('0.3.0', { type: 'git', url: 'git+https://github.com/awg-dev/awg.git' }),
    );
    expect(await checkForUpdate(newer, 'npm', '0.1.0', US)).toEqual({
      installedWith: 'npm',
      current: '0.1.0',
      newest: '0.3.0',
      updateAvailable: true,
      command: 'npm install --global awg@0.3.0',
    });
    expect(newer.ran).toEqual([
      'npm view awg version repository --json --fetch-timeout=10000 --fetch-retries=0',
    ]);
    const same = exec(view('0.1.0', 'github:awg-dev/awg'));
    expect(await checkForUpdate(same, 'npm', '0.1.0', US)).toEqual({
      installedWith: 'npm',
      current: '0.1.0',
      newest: '0.1.0',
      updateAvailable: false,
    });
    const offline = exec({
      'npm view': {
        code: 1,
        stderr:
          'npm warn Unknown user config "nodedir"\nnpm ERR! code ENOTFOUND\nnpm ERR! network request failed',
      },
    });
    expect((await checkForUpdate(offline, 'npm', '0.1.0', US)).unknown).toBe(
      'npm could not tell the newest release of awg (offline?): npm ERR! code ENOTFOUND',
    );
    const missing = exec({
      'npm view': {
        code: 1,
        stdout: JSON.stringify({
          error: { code: 'E404', summary: 'Not Found - GET https://registry.npmjs.org/awg' },
        }),
      },
    });
    expect((await checkForUpdate(missing, 'npm', '0.1.0', US)).unknown).toBe(
      'npm could not tell the newest release of awg (offline?): E404: Not Found - GET https://registry.npmjs.org/awg',
    );
    expect((await checkForUpdate(exec({}), 'checkout')).unknown).toMatch(/source checkout/);
  });

  it('npm: a package of that name from another repository, or none, is never offered', async () => {
    for (const repository of [
      { type: 'git', url: 'git+https://github.com/someone-else/awg.git' },
      'https://gitlab.com/awg-dev/awg',
      undefined,
      { type: 'git' },
    ]) {
      const theirs = exec(view('9.9.9', repository));
      const r = await checkForUpdate(theirs, 'npm', '0.1.0', US);
      expect(r).toEqual({
        installedWith: 'npm',
        current: '0.1.0',
        unknown: expect.stringMatching(
          /^the npm package "awg" names (the repository \S+|no repository), not this awg's \(github\.com\/awg-dev\/awg\): it is not offered as an update$/,
        ),
      });
      expect(JSON.stringify(r)).not.toMatch(/9\.9\.9|npm install/);
    }
  });

  it('npm: an awg whose package.json names no repository does not ask npm at all', async () => {
    const e = exec(view('9.9.9', 'github:awg-dev/awg'));
    const r = await checkForUpdate(e, 'npm', '0.1.0', { name: 'awg' });
    expect(r.unknown).toBe(
      'this awg\'s package.json names no repository, so no release on npm can be tied to it (the npm package "awg" may be anyone\'s); npm was not asked',
    );
    expect(e.ran).toEqual([]);
    // this checkout's own package.json is read for the name and repository
    expect(ownNpmIdentity('{"name":"@x/awg","repository":"github:x/awg"}')).toEqual({
      name: '@x/awg',
      repository: 'github:x/awg',
    });
    expect(ownNpmIdentity().name).toBe('awg');
  });

  it('repositories compare by host and path, whatever the spelling', () => {
    const key = 'github.com/awg-dev/awg';
    for (const spelling of [
      'git+https://github.com/awg-dev/awg.git',
      'https://github.com/AWG-dev/awg/',
      'git://github.com/awg-dev/awg.git',
      'git+ssh://git@github.com/awg-dev/awg.git',
      'git@github.com:awg-dev/awg.git',
      'github:awg-dev/awg',
      'awg-dev/awg',
      { type: 'git', url: 'https://github.com/awg-dev/awg#main' },
    ])
      expect(repositoryKey(spelling), JSON.stringify(spelling)).toBe(key);
    expect(repositoryKey('gitlab:g/r')).toBe('gitlab.com/g/r');
    expect(repositoryKey('https://git.example.org:8443/g/r.git')).toBe('git.example.org/g/r');
    expect(repositoryKey('https://github.com/someone-else/awg')).not.toBe(key);
    for (const none of [undefined, '', '   ', { type: 'git' }, 42, 'awg'])
      expect(repositoryKey(none), JSON.stringify(none)).toBeUndefined();
  });

  it('the command: exit 0 current, 2 newer, 1 unknown; without --check only the version', async () => {
    const run = async (
      o: Parameters<typeof versionCommand>[1],
      e: Exec,
      pkgRoot: string,
      npmIdentity?: NpmIdentity,
    ) => {
      let out = '';
      const io: Io = { out: (s) => (out += s), err: (s) => (out += s), colour: false };
      return {
        code: await versionCommand(io, o, {
          exec: e,
          pkgRoot,
          ...(npmIdentity ? { npmIdentity } : {}),
        }),
        out,
      };
    };
    const plain = await run({}, exec({}), '/x');
    expect(plain).toEqual({
      code: 0,
      out: `awg ${VERSION} (node ${process.version}, ${process.platform} ${process.arch})\n`,
    });
    // no compile cache under vitest (bin/awg.js turns it on for the installed bundle only)
    expect(JSON.parse((await run({ json: true }, exec({}), '/x')).out)).toEqual({
      version: VERSION,
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      compileCache: null,
    });
    const npm = '/usr/lib/node_modules/awg';
    const newer = await run({ check: true }, exec(view('99.0.0', 'github:awg-dev/awg')), npm, US);
    expect(newer).toEqual({
      code: 2,
      out: `awg ${VERSION} (npm): 99.0.0 is available — npm install --global awg@99.0.0\n`,
    });
    expect(await run({ check: true }, exec(view(VERSION, 'github:awg-dev/awg')), npm, US)).toEqual({
      code: 0,
      out: `awg ${VERSION} (npm) is the newest release on npm\n`,
    });
    expect(
      (await run({ check: true }, exec(view('99.0.0', 'github:someone-else/awg')), npm, US)).code,
    ).toBe(1);
    // a registry's text reaches the terminal without its escape sequences
    const hostile = await run(
      { check: true },
      exec(view('99.0.0', 'https://evil.example/\x1b]0;owned\x07x\ny')),
      npm,
      US,
    );
    expect(hostile.code).toBe(1);
    expect(hostile.out.includes('\x1b') || hostile.out.includes('\x07')).toBe(false);
    expect(hostile.out.split('\n')).toHaveLength(2);
    // as shipped: package.json names no repository, so an npm install's check answers "unknown"
    const shipped = exec(view('99.0.0', 'github:awg-dev/awg'));
    expect((await run({ check: true }, shipped, npm)).code).toBe(1);
    expect(shipped.ran).toEqual([]);
    expect((await run({ check: true, json: true }, exec({}), '/usr/lib/awg')).code).toBe(1);
  });
});
