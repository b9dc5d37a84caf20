import { describe, expect, it } from 'vitest';
import { checkForUpdate, compareVersions, installKind, parseAptPolicy, versionCommand } from '../../../src/cli/commands/version.js';
import { VERSION } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import type { Exec, ExecResult } from '../../../src/util/exec.js';

/** answers by command name; records what ran */
function exec(answers: Record<string, Partial<ExecResult>>): Exec & { ran: string[] } {
  const ran: string[] = [];
  const read = async (cmd: string, args: string[]) => {
    ran.push([cmd, ...args].join(' '));
    const a = answers[`${cmd} ${args[0] ?? ''}`.trim()] ?? answers[cmd] ?? { code: 127, stderr: `${cmd}: not found` };
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
  return { ran, read, mutate: read, record: () => true, dryRun: false, mutations: 0 } as unknown as Exec & { ran: string[] };
}

const POLICY = (installed: string, candidate: string) => `awg:\n  Installed: ${installed}\n  Candidate: ${candidate}\n  Version table:\n *** ${installed} 500\n`;

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
    expect(parseAptPolicy(POLICY('0.1.0-1', '0.2.0-1'))).toEqual({ installed: '0.1.0-1', candidate: '0.2.0-1' });
    expect(parseAptPolicy('awg:\n  Installed: (none)\n  Candidate: (none)\n')).toEqual({});
  });

  it('deb: apt-cache policy (local lists, no network) and dpkg --compare-versions decide', async () => {
    const newer = exec({ 'apt-cache policy': { stdout: POLICY('0.1.0-1', '0.2.0-1') }, 'dpkg --compare-versions': { code: 0 } });
    expect(await checkForUpdate(newer, 'deb', '0.1.0')).toEqual({ installedWith: 'deb', current: '0.1.0', newest: '0.2.0-1', updateAvailable: true, command: 'apt-get update && apt-get install --only-upgrade awg' });
    expect(newer.ran).toEqual(['apt-cache policy awg', 'dpkg --compare-versions 0.2.0-1 gt 0.1.0-1']);
    const same = exec({ 'apt-cache policy': { stdout: POLICY('0.1.0-1', '0.1.0-1') }, 'dpkg --compare-versions': { code: 1 } });
    expect((await checkForUpdate(same, 'deb', '0.1.0')).updateAvailable).toBe(false);
    const unknown = exec({ 'apt-cache policy': { stdout: 'N: Unable to locate package awg\n' } });
    expect((await checkForUpdate(unknown, 'deb')).unknown).toMatch(/apt knows no release of awg/);
  });

  it('npm: npm view; offline is reported, not guessed', async () => {
    const newer = exec({ 'npm view': { stdout: '"0.3.0"\n' } });
    expect(await checkForUpdate(newer, 'npm', '0.1.0')).toMatchObject({ newest: '0.3.0', updateAvailable: true, command: 'npm install --global awg@latest' });
    expect(newer.ran[0]).toBe('npm view awg version --json --fetch-timeout=10000 --fetch-retries=0');
    const offline = exec({ 'npm view': { code: 1, stderr: 'npm ERR! code ENOTFOUND\nnpm ERR! network request failed' } });
    expect((await checkForUpdate(offline, 'npm')).unknown).toMatch(/npm could not tell the newest release \(offline\?\): npm ERR! code ENOTFOUND/);
    expect((await checkForUpdate(exec({}), 'checkout')).unknown).toMatch(/source checkout/);
  });

  it('the command: exit 0 current, 2 newer, 1 unknown; without --check only the version', async () => {
    const run = async (o: Parameters<typeof versionCommand>[1], e: Exec, pkgRoot: string) => {
      let out = '';
      const io: Io = { out: (s) => (out += s), err: (s) => (out += s), colour: false };
      return { code: await versionCommand(io, o, { exec: e, pkgRoot }), out };
    };
    const plain = await run({}, exec({}), '/x');
    expect(plain).toEqual({ code: 0, out: `awg ${VERSION} (node ${process.version}, ${process.platform} ${process.arch})\n` });
    const newer = await run({ check: true }, exec({ 'npm view': { stdout: '"99.0.0"' } }), '/usr/lib/node_modules/awg');
    expect(newer.code).toBe(2);
    expect(newer.out).toBe(`awg ${VERSION} (npm): 99.0.0 is available — npm install --global awg@latest\n`);
    expect((await run({ check: true }, exec({ 'npm view': { stdout: `"${VERSION}"` } }), '/usr/lib/node_modules/awg')).code).toBe(0);
    expect((await run({ check: true, json: true }, exec({}), '/usr/lib/awg')).code).toBe(1);
  });
});
