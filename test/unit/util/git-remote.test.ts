/** Where a checkout's remote lives (src/util/git-remote.ts): URL forms, and the config read. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gitRemoteUrlOf, parseGitConfig, remoteEndpoint } from '../../../src/util/git-remote.js';

describe('remoteEndpoint', () => {
  it.each([
    ['ssh://git@git.example.org/fleet.git', { kind: 'network', host: 'git.example.org', port: 22 }],
    [
      'ssh://git@git.example.org:2222/fleet.git',
      { kind: 'network', host: 'git.example.org', port: 2222 },
    ],
    ['ssh://[fd00::5]:2222/fleet.git', { kind: 'network', host: 'fd00::5', port: 2222 }],
    ['git+ssh://h/x', { kind: 'network', host: 'h', port: 22 }],
    ['git@github.com:org/fleet.git', { kind: 'network', host: 'github.com', port: 22 }],
    ['github.com:org/fleet.git', { kind: 'network', host: 'github.com', port: 22 }],
    [
      'https://git.example.org/org/fleet.git',
      { kind: 'network', host: 'git.example.org', port: 443 },
    ],
    [
      'https://user@git.example.org:8443/fleet',
      { kind: 'network', host: 'git.example.org', port: 8443 },
    ],
    ['http://10.0.0.1/fleet', { kind: 'network', host: '10.0.0.1', port: 80 }],
    ['git://10.200.1.2/fleet.git', { kind: 'network', host: '10.200.1.2', port: 9418 }],
    ['git://10.200.1.2:9419/fleet.git', { kind: 'network', host: '10.200.1.2', port: 9419 }],
    ['file:///srv/fleet.git', { kind: 'local' }],
    ['/srv/fleet.git', { kind: 'local' }],
    ['../fleet.git', { kind: 'local' }],
    ['dir/with:colon', { kind: 'local' }],
  ])('%s', (url, want) => expect(remoteEndpoint(url)).toEqual(want));
  it.each(['', 'ext::ssh -i key host %S fleet', 'ftp://h/x'])('%s: not known', (url) =>
    expect(remoteEndpoint(url)).toBeUndefined(),
  );
});

describe('gitRemoteUrlOf', () => {
  const dir = mkdtempSync(join(tmpdir(), 'awg-git-remote-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it("reads the branch's remote, else origin; undefined outside a checkout", () => {
    mkdirSync(join(dir, 'co/.git'), { recursive: true });
    writeFileSync(join(dir, 'co/.git/HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(
      join(dir, 'co/.git/config'),
      '[core]\n\tbare = false\n[remote "origin"]\n\turl = git://10.0.0.1/a.git\n[remote "up"]\n\turl = "ssh://h/b.git" ; note\n[branch "main"]\n\tremote = up\n',
    );
    expect(gitRemoteUrlOf(join(dir, 'co/awg.yaml'))).toBe('ssh://h/b.git');
    writeFileSync(join(dir, 'co/.git/HEAD'), 'ref: refs/heads/other\n');
    expect(gitRemoteUrlOf(join(dir, 'co/awg.yaml'))).toBe('git://10.0.0.1/a.git');
    expect(gitRemoteUrlOf(join(tmpdir(), 'no-such-dir-awg/awg.yaml'))).toBeUndefined();
  });
  it('parses sections, subsections and first values', () => {
    const c = parseGitConfig('[Remote "o"]\nURL = a\nurl = b\n# c\n[x]\nflag\n');
    expect(c.get('remote "o"')?.get('url')).toBe('a');
    expect(c.get('x')?.get('flag')).toBe('true');
  });
});
