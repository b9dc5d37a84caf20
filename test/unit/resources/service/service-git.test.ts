/** `awg service install --git`: the pull unit and timer that follow a repository. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serviceCommand } from '../../../../src/cli/commands/service.js';
import { systemdManager } from '../../../../src/resources/service/manager.js';
import {
  daemonArgv,
  parseDaemonArgv,
  renderSyncTimer,
  renderSyncUnit,
  type DaemonInvocation,
} from '../../../../src/resources/service/render.js';
import { LONG_RUNNING_NODE_FLAGS } from '../../../../src/util/node-flags.js';
import {
  capture,
  noAnalyze,
  RecordingExec,
  removeTmp,
  systemdAnalyze,
  tmp,
} from './service-support.js';

afterEach(removeTmp);

const GIT: DaemonInvocation = {
  node: '/usr/bin/node',
  bin: '/usr/lib/node_modules/awg/bin/awg.js',
  config: '/var/lib/awg-repo/hosts/awg.yaml',
  host: 'laptop-1',
  labelsFile: '/etc/awg/labels.yaml',
  locked: true,
  git: {
    url: 'ssh://git@git.example.org/fleet.git',
    branch: 'main',
    path: '/var/lib/awg-repo',
    allowedSigners: '/etc/awg/allowed_signers',
    interval: '5min',
  },
};

describe('following a repository (awg service install --git)', () => {
  it('golden: the pull unit and its timer; the daemon gets --host, --labels-file, --locked and the allowed signers', async () => {
    await expect(renderSyncUnit(GIT)).toMatchFileSnapshot('./service.golden/awg-sync.service');
    await expect(renderSyncTimer(GIT)).toMatchFileSnapshot('./service.golden/awg-sync.timer');
    expect(daemonArgv(GIT).slice(2 + LONG_RUNNING_NODE_FLAGS.length)).toEqual([
      'daemon',
      '--config',
      '/var/lib/awg-repo/hosts/awg.yaml',
      '--host',
      'laptop-1',
      '--labels-file',
      '/etc/awg/labels.yaml',
      '--locked',
      '--allowed-signers',
      '/etc/awg/allowed_signers',
    ]);
    const argv = daemonArgv(GIT);
    expect(daemonArgv(parseDaemonArgv(argv)!)).toEqual(argv);
    expect(() =>
      renderSyncTimer({ ...GIT, git: { ...GIT.git!, interval: '5min; rm -rf /' } }),
    ).toThrow(/not a systemd time span/);
  });

  it.skipIf(noAnalyze)('systemd-analyze verify accepts the pull unit and timer', () => {
    const analyze = systemdAnalyze();
    const d = tmp();
    const inv = {
      ...GIT,
      node: process.execPath,
      bin: fileURLToPath(new URL('../../../../bin/awg.js', import.meta.url)),
    };
    writeFileSync(join(d, 'awg-sync.service'), renderSyncUnit(inv));
    writeFileSync(join(d, 'awg-sync.timer'), renderSyncTimer(inv));
    const r = spawnSync(
      analyze,
      ['verify', join(d, 'awg-sync.service'), join(d, 'awg-sync.timer')],
      { encoding: 'utf8' },
    );
    expect(r.stderr.split('\n').filter((l) => l && !/network-online\.target/.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('install --root: clone, the units, an offline enable of the timer; uninstall removes the pull units and keeps the checkout', async () => {
    const root = tmp();
    const exec = new RecordingExec();
    const c = capture();
    const o = {
      root,
      platform: 'linux',
      git: 'file:///srv/fleet.git',
      path: '/var/lib/awg-repo',
      branch: 'prod',
      config: 'hosts/awg.yaml',
      locked: true,
      node: '/usr/bin/node',
      bin: '/opt/awg/bin/awg.js',
    };
    expect(await serviceCommand(c.io, 'install', o, { exec })).toBe(0);
    expect(exec.log[0]).toBe(
      `git -c protocol.ext.allow=never clone --quiet --branch prod -- file:///srv/fleet.git ${join(root, 'var/lib/awg-repo')}`,
    );
    expect(exec.log.at(-1)).toBe(
      `systemctl --root=${root} enable awg-killswitch.service awg.service awg-sync.timer`,
    );
    expect(readFileSync(join(root, 'etc/systemd/system/awg-sync.service'), 'utf8')).toContain(
      'ExecStart=/usr/bin/node /opt/awg/bin/awg.js sync --path /var/lib/awg-repo --branch prod\n',
    );
    expect(readFileSync(join(root, 'etc/systemd/system/awg.service'), 'utf8')).toContain(
      'daemon --config /var/lib/awg-repo/hosts/awg.yaml --locked\n',
    );
    expect(c.out()).toContain(
      'Following file:///srv/fleet.git (prod) in /var/lib/awg-repo: awg-sync.timer pulls every 1min; the daemon applies /var/lib/awg-repo/hosts/awg.yaml.',
    );
    const un = new RecordingExec();
    await systemdManager.uninstall({ exec: un, root });
    expect(un.log.slice(0, 3)).toEqual([
      `systemctl --root=${root} disable awg-sync.timer`,
      `rm ${join(root, 'etc/systemd/system/awg-sync.timer')}`,
      `rm ${join(root, 'etc/systemd/system/awg-sync.service')}`,
    ]);
  });

  it('refusals: --git without --path, a config outside the checkout, option-like URLs and branches, --path without --git, launchd', async () => {
    const run = async (o: Record<string, unknown>) => {
      const c = capture();
      const code = await serviceCommand(
        c.io,
        'install',
        { root: tmp(), platform: 'linux', ...o },
        { exec: new RecordingExec() },
      );
      return { code, err: c.err() };
    };
    expect((await run({ git: 'file:///x' })).err).toMatch(/--git needs --path/);
    expect((await run({ git: 'file:///x', path: '/r', config: '../etc/awg.yaml' })).err).toMatch(
      /outside the checkout/,
    );
    expect((await run({ git: '--upload-pack=x', path: '/r' })).err).toMatch(
      /is not a repository URL/,
    );
    expect((await run({ git: 'ext::sh -c x', path: '/r' })).err).toMatch(/is not a repository URL/);
    expect((await run({ git: 'file:///x', path: '/r', branch: '-x' })).err).toMatch(
      /not a plain git name/,
    );
    expect((await run({ path: '/r' })).err).toMatch(/go with --git/);
    expect((await run({ git: 'file:///x', path: '/r', platform: 'darwin' })).err).toMatch(
      /systemd-only for now/,
    );
  });
});
