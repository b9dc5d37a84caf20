import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  aptCheck,
  awgAptSource,
  parseAptPolicy,
  refreshAwgSource,
  suitesOf,
} from '../../../src/util/package-update.js';
import type { Exec, ExecResult } from '../../../src/util/exec.js';

// real outputs of `LC_ALL=C apt-cache policy awg` (apt 2.6, Debian 12) against a repository
// scripts/apt-repo.sh built (stable: 0.1.0; beta: 0.1.0 and 0.1.1), with a private apt whose
// dpkg status holds awg 0.1.0 (test/netns/apt-repo.test.ts sets one up the same way)
const fixture = (name: string) =>
  readFileSync(join(import.meta.dirname, '../../fixtures/linux/apt', `${name}.txt`), 'utf8');

/** answers by `cmd arg0`; records what ran and with which LC_ALL */
function fakeExec(answers: Record<string, Partial<ExecResult>>): Exec & { ran: string[] } {
  const ran: string[] = [];
  const read = async (cmd: string, args: string[], o?: { env?: NodeJS.ProcessEnv }) => {
    ran.push(`${[cmd, ...args].join(' ')}${o?.env?.LC_ALL ? ` [LC_ALL=${o.env.LC_ALL}]` : ''}`);
    const a = answers[`${cmd} ${args[0] ?? ''}`] ?? { code: 127, stderr: `${cmd}: not found` };
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
  return { ran, read, mutate: read, record: () => true, dryRun: false, mutations: 0 };
}

describe('apt-cache policy awg, parsed', () => {
  it('installed older, the beta suite offers the newer', () => {
    const p = parseAptPolicy(fixture('policy-beta-newer'));
    expect(p).toMatchObject({ installed: '0.1.0', candidate: '0.1.1' });
    expect(p.versions).toEqual([
      {
        version: '0.1.1',
        installed: false,
        origins: [{ priority: 500, uri: 'http://127.0.0.1:8080', suite: 'beta' }],
      },
      {
        version: '0.1.0',
        installed: false,
        origins: [{ priority: 500, uri: 'http://127.0.0.1:8080', suite: 'beta' }],
      },
      {
        version: '0.1.0',
        installed: true,
        origins: [{ priority: 100, uri: '/tmp/aptr-try/apt/state/status' }],
      },
    ]);
    expect(suitesOf(p, '0.1.1')).toEqual(['beta']);
  });

  it("stable and beta both configured: the candidate is beta's, 0.1.0 is in both", () => {
    const p = parseAptPolicy(fixture('policy-stable-and-beta'));
    expect(p.candidate).toBe('0.1.1');
    expect(suitesOf(p, '0.1.1')).toEqual(['beta']);
    expect(suitesOf(p, '0.1.0')).toEqual(['stable', 'beta']);
  });

  it('up to date on stable; installed with no source; not installed; a package apt does not know', () => {
    expect(parseAptPolicy(fixture('policy-stable-current'))).toMatchObject({
      installed: '0.1.0',
      candidate: '0.1.0',
    });
    const none = parseAptPolicy(fixture('policy-installed-no-source'));
    expect(none).toMatchObject({ installed: '0.1.0', candidate: '0.1.0' });
    expect(suitesOf(none, '0.1.0')).toEqual([]);
    const fresh = parseAptPolicy(fixture('policy-not-installed'));
    expect(fresh.installed).toBeUndefined();
    expect(fresh.candidate).toBe('0.1.1');
    expect(fixture('policy-unknown-package')).toBe('');
    expect(parseAptPolicy('')).toEqual({ versions: [] });
  });
});

describe('apt checks', () => {
  it("aptCheck: the candidate against dpkg's installed version, in dpkg's order", async () => {
    const e = fakeExec({
      'apt-cache policy': { stdout: fixture('policy-beta-newer') },
      'dpkg --compare-versions': { code: 0 },
    });
    expect(await aptCheck(e, '0.0.9')).toEqual({
      installed: '0.1.0',
      candidate: '0.1.1',
      updateAvailable: true,
      suites: ['beta'],
    });
    expect(e.ran).toEqual([
      'apt-cache policy awg [LC_ALL=C]',
      'dpkg --compare-versions 0.1.1 gt 0.1.0',
    ]);
    const unknown = fakeExec({ 'apt-cache policy': { stdout: '' } });
    await expect(aptCheck(unknown, '0.1.0')).rejects.toThrow(/apt knows no release of awg/);
  });

  it("refreshAwgSource: apt-get update of awg's source alone, other lists kept; an Err line fails it", async () => {
    const ok = fakeExec({ 'apt-get update': { stdout: 'Hit:1 http://x stable InRelease\n' } });
    await refreshAwgSource(ok, '/etc/apt/sources.list.d/awg.sources');
    expect(ok.ran).toEqual([
      'apt-get update -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/awg.sources -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 [LC_ALL=C]',
    ]);
    const bad = fakeExec({
      'apt-get update': {
        code: 100,
        stderr:
          "W: GPG error: http://x stable InRelease: NO_PUBKEY F4F545051F744F42\nE: The repository 'http://x stable InRelease' is not signed.\n",
      },
    });
    await expect(refreshAwgSource(bad, '/s')).rejects.toThrow(/NO_PUBKEY.*is not signed/);
  });

  it("awg's source: the deb822 file first, the one-line form else, none when neither exists", () => {
    expect(awgAptSource(() => true)).toBe('/etc/apt/sources.list.d/awg.sources');
    expect(awgAptSource((p) => p.endsWith('.list'))).toBe('/etc/apt/sources.list.d/awg.list');
    expect(awgAptSource(() => false)).toBeUndefined();
  });
});
