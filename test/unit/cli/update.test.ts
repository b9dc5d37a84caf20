import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { updateCommand } from '../../../src/cli/commands/update.js';
import type { Io } from '../../../src/cli/output.js';
import type { Exec, ExecResult } from '../../../src/util/exec.js';

const policy = (name: string) =>
  readFileSync(join(import.meta.dirname, '../../fixtures/linux/apt', `${name}.txt`), 'utf8');

function fakeExec(answers: Record<string, Partial<ExecResult>>): Exec & { ran: string[] } {
  const ran: string[] = [];
  const answer = (kind: string) => async (cmd: string, args: string[]) => {
    ran.push(`${kind} ${[cmd, ...args].join(' ')}`);
    const a = answers[`${cmd} ${args[0] ?? ''}`] ?? { code: 127, stderr: `${cmd}: not found` };
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
  return {
    ran,
    read: answer('read'),
    mutate: answer('mutate'),
    record: () => true,
    dryRun: false,
    mutations: 0,
  };
}

function io(): Io & { text: () => string } {
  let t = '';
  return {
    out: (s: string) => void (t += s),
    err: (s: string) => void (t += s),
    text: () => t,
  } as Io & { text: () => string };
}

const SOURCE = '/etc/apt/sources.list.d/awg.sources';
const deb = { pkgRoot: '/usr/lib/awg/app', findSource: () => SOURCE };

describe('awg update', () => {
  it("--check (the default): refresh awg's source alone, then exit 2 when its candidate is newer", async () => {
    const exec = fakeExec({
      'apt-get update': {},
      'apt-cache policy': { stdout: policy('policy-beta-newer') },
      'dpkg --compare-versions': { code: 0 },
    });
    const o = io();
    expect(await updateCommand(o, { json: true }, { ...deb, exec })).toBe(2);
    expect(JSON.parse(o.text())).toEqual({
      installedWith: 'deb',
      installed: '0.1.0',
      candidate: '0.1.1',
      updateAvailable: true,
      suites: ['beta'],
      source: SOURCE,
      refreshed: true,
      command: 'awg update --apply',
    });
    expect(exec.ran[0]).toBe(
      `read apt-get update -q -o Dir::Etc::sourcelist=${SOURCE} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0`,
    );
    expect(exec.ran.some((r) => r.startsWith('mutate'))).toBe(false);
    const text = io();
    await updateCommand(
      text,
      { refresh: false },
      {
        ...deb,
        exec: fakeExec({
          'apt-cache policy': { stdout: policy('policy-stable-current') },
          'dpkg --compare-versions': { code: 1 },
        }),
      },
    );
    expect(text.text()).toBe(
      `awg 0.1.0 is the newest release ${SOURCE} offers (stable) (lists not refreshed)\n`,
    );
  });

  it('--apply: apt-get install --only-upgrade awg, and nothing when already the newest', async () => {
    const exec = fakeExec({
      'apt-get update': {},
      'apt-cache policy': { stdout: policy('policy-beta-newer') },
      'dpkg --compare-versions': { code: 0 },
      'apt-get install': {},
      'dpkg-query -W': { stdout: '0.1.1' },
    });
    const o = io();
    expect(await updateCommand(o, { apply: true }, { ...deb, exec })).toBe(0);
    expect(o.text()).toBe('awg upgraded from 0.1.0 to 0.1.1\n');
    expect(exec.ran).toContain('mutate apt-get install --only-upgrade -y -q awg');
    const current = fakeExec({
      'apt-get update': {},
      'apt-cache policy': { stdout: policy('policy-stable-current') },
      'dpkg --compare-versions': { code: 1 },
    });
    expect(await updateCommand(io(), { apply: true }, { ...deb, exec: current })).toBe(0);
    expect(current.ran.some((r) => r.startsWith('mutate'))).toBe(false);
    const failing = fakeExec({
      'apt-get update': {},
      'apt-cache policy': { stdout: policy('policy-beta-newer') },
      'dpkg --compare-versions': { code: 0 },
      'apt-get install': {
        code: 100,
        stderr: 'E: Could not get lock /var/lib/dpkg/lock-frontend\n',
      },
    });
    const f = io();
    expect(await updateCommand(f, { apply: true }, { ...deb, exec: failing })).toBe(1);
    expect(f.text()).toMatch(/Could not get lock/);
  });

  it('no awg apt source: exit 1 and where to configure one; apt is not asked', async () => {
    const exec = fakeExec({});
    const o = io();
    expect(await updateCommand(o, {}, { ...deb, findSource: () => undefined, exec })).toBe(1);
    expect(o.text()).toMatch(/no awg apt source is configured/);
    expect(exec.ran).toEqual([]);
  });

  it('npm and checkout installs are told how to update; --apply never replaces files', async () => {
    const exec = fakeExec({});
    const npm = io();
    expect(
      await updateCommand(
        npm,
        { apply: true },
        { pkgRoot: '/usr/lib/node_modules/awg', exec, npmIdentity: { name: 'awg' } },
      ),
    ).toBe(1);
    expect(npm.text()).toMatch(/installed with npm: update with npm/);
    const co = io();
    expect(await updateCommand(co, {}, { pkgRoot: '/home/me/src/awg', exec })).toBe(1);
    expect(co.text()).toMatch(/git pull/);
    expect(exec.ran).toEqual([]);
    expect(await updateCommand(io(), { check: true, apply: true }, { ...deb, exec })).toBe(1);
  });
});
