/**
 * `awg processes --direct` on the macOS host model: the last apply's config and rules, the
 * tunnels' state from the model's utuns (Platform.upLinks: the registry's utun, `ifconfig`
 * in the captured format) and the processes from a captured `ps -ef` (the libproc table's
 * fake). Verified on the model only (docs/platform-macos.md).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listProcessesDirect } from '../../../src/cli/commands/processes.js';
import { darwinProcessLister } from '../../../src/procs/list.js';
import { macConfig, rigsCleanedAfterEach } from '../../helpers/macos-host/scenario.js';
import { capturedProcTable } from '../../helpers/macos-host/procs.js';

const withRule =
  macConfig({ killSwitch: false }) +
  `rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: block
  - name: sublime
    match: { dir: "/Applications/Sublime Text.app" }
    target: home
    fallback: allow-direct
`;

describe('macOS host model: awg processes --direct', () => {
  const rig = rigsCleanedAfterEach();

  it('routes follow the utun: up → the tunnel; its engine gone → each rule falls back', async () => {
    const r = rig(withRule);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const list = () =>
      listProcessesDirect({
        stateDir: join(r.dir, 'state'),
        platform: r.platform,
        exec: r.host,
        processes: darwinProcessLister(capturedProcTable()),
      });
    const routes = async () =>
      Object.fromEntries(
        (await list()).map((p) => [`${p.pid} ${p.name}`, `${p.rule ?? '-'} ${p.route}`]),
      );
    expect(await routes()).toEqual({
      '530 Mail': 'mail home',
      '560 Sublime Text': 'sublime home',
      '633 plugin_host': 'sublime home',
    });
    r.engines.kill('home');
    expect(await routes()).toEqual({
      '530 Mail': 'mail blocked',
      '560 Sublime Text': 'sublime direct',
      '633 plugin_host': 'sublime direct',
    });
  });

  it('no apply record: invalid-config, before anything is listed', async () => {
    const r = rig(withRule);
    await expect(
      listProcessesDirect({
        stateDir: join(r.dir, 'state'),
        platform: r.platform,
        exec: r.host,
        processes: darwinProcessLister(capturedProcTable()),
      }),
    ).rejects.toMatchObject({ kind: 'invalid-config' });
  });
});
