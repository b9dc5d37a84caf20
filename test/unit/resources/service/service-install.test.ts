/**
 * Installing, removing and reading the state of the service: the systemd and launchd
 * managers through a recording Exec, and the `awg service` CLI.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../../src/cli/main.js';
import { serviceCommand } from '../../../../src/cli/commands/service.js';
import { launchdManager, systemdManager } from '../../../../src/resources/service/manager.js';
import {
  renderBootUnit,
  renderKillSwitchLaunchdPlist,
  renderLaunchdPlist,
  renderSystemdUnit,
} from '../../../../src/resources/service/render.js';
import { loadPlatform } from '../../../../src/resources/registry.js';
import { capture, INV, RecordingExec, removeTmp, tmp } from './service-support.js';

afterEach(removeTmp);

describe('install / uninstall / status through Exec', () => {
  it('systemd into a temp root: the file (0644) and an offline enable; again: unchanged, no rewrite', async () => {
    const root = tmp();
    const exec = new RecordingExec();
    const r = await systemdManager.install(INV, { exec, root });
    const path = join(root, 'etc/systemd/system/awg.service');
    const bootPath = join(root, 'etc/systemd/system/awg-killswitch.service');
    expect(r).toEqual({ changed: true, path, bootPath });
    expect(readFileSync(path, 'utf8')).toBe(renderSystemdUnit(INV));
    expect(readFileSync(bootPath, 'utf8')).toBe(renderBootUnit(INV));
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(exec.log).toEqual([
      `write ${bootPath} (${renderBootUnit(INV).length} bytes, mode 0644)`,
      `write ${path} (${renderSystemdUnit(INV).length} bytes, mode 0644)`,
      `systemctl --root=${root} enable awg-killswitch.service awg.service`,
    ]);
    const again = new RecordingExec();
    expect((await systemdManager.install(INV, { exec: again, root })).changed).toBe(false);
    expect(again.log).toEqual([
      `systemctl --root=${root} enable awg-killswitch.service awg.service`,
    ]);
    const un = new RecordingExec();
    expect(await systemdManager.uninstall({ exec: un, root })).toEqual({ removed: true, path });
    expect(existsSync(path)).toBe(false);
    expect(existsSync(bootPath)).toBe(false);
    expect(un.log).toEqual([
      `systemctl --root=${root} disable awg.service awg-killswitch.service`,
      `rm ${path}`,
      `rm ${bootPath}`,
    ]);
  });

  it('systemd on the running system: daemon-reload, enable --now, try-restart (recorded, not run)', async () => {
    const exec = new RecordingExec(true);
    await systemdManager.install(INV, { exec });
    // the early unit is enabled for the next boot, never started (it would replace the running table)
    expect(exec.log.slice(2)).toEqual([
      'systemctl daemon-reload',
      'systemctl enable awg-killswitch.service',
      'systemctl enable --now awg.service',
      'systemctl try-restart awg.service',
    ]);
    expect(exec.log[0]).toMatch(/^write \/etc\/systemd\/system\/awg-killswitch\.service/);
    expect(exec.log[1]).toMatch(/^write \/etc\/systemd\/system\/awg\.service/);
  });

  it('systemd status parses systemctl show', async () => {
    const root = tmp();
    await systemdManager.install(INV, { exec: new RecordingExec(), root });
    const exec = new RecordingExec(false, {
      'systemctl show awg.service --property=LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,ExecMainStatus,FragmentPath':
        {
          code: 0,
          stderr: '',
          stdout:
            'LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=4242\nNRestarts=1\nExecMainStatus=0\n',
        },
    });
    // with a root the running manager is not asked
    expect((await systemdManager.status({ exec, root })).installed).toBe(true);
    expect(exec.reads).toEqual([]);
    const live = await systemdManager.status({ exec });
    expect(live).toMatchObject({
      active: true,
      enabled: true,
      pid: 4242,
      detail: { NRestarts: '1' },
    });
    const outdated = await systemdManager.status(
      { exec: new RecordingExec(), root },
      { ...INV, config: '/other.yaml' },
    );
    expect(outdated.outdated).toBe(true);
  });

  // reads the host's /etc/systemd/system/awg.service: meaningful only where there is none
  it.skipIf(existsSync('/etc/systemd/system/awg.service'))(
    "systemd status: a unit systemd loaded from elsewhere (the Debian package's) counts as installed",
    async () => {
      const fragment = join(tmp(), 'awg.service');
      writeFileSync(
        fragment,
        '[Service]\nExecStart=/usr/lib/awg/node /usr/lib/awg/app/bin/awg.js daemon\n',
      );
      const show = (stdout: string) =>
        new RecordingExec(false, {
          'systemctl show awg.service --property=LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,ExecMainStatus,FragmentPath':
            { code: 0, stderr: '', stdout },
        });
      const running = `LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=77\nFragmentPath=${fragment}\n`;
      const deb = { node: '/usr/lib/awg/node', bin: '/usr/lib/awg/app/bin/awg.js' };
      expect(await systemdManager.status({ exec: show(running) }, undefined, deb)).toMatchObject({
        state: 'running',
        installed: true,
        path: fragment,
        outdated: false,
        active: true,
        pid: 77,
      });
      expect(
        await systemdManager.status({ exec: show(running) }, undefined, {
          node: '/usr/bin/node',
          bin: deb.bin,
        }),
      ).toMatchObject({ state: 'outdated', path: fragment });
      // systemd knows no such unit: not installed, as before
      expect(
        await systemdManager.status(
          { exec: show('LoadState=not-found\nActiveState=inactive\nFragmentPath=\n') },
          undefined,
          deb,
        ),
      ).toMatchObject({
        state: 'not-installed',
        installed: false,
        path: '/etc/systemd/system/awg.service',
      });
    },
  );

  it('launchd: bootout then bootstrap when the plist changed', async () => {
    const exec = new RecordingExec(true);
    await launchdManager.install(INV, { exec });
    // the boot kill switch is written, never bootstrapped: launchd runs it at the next boot
    expect(exec.log).toEqual([
      expect.stringMatching(/^write \/Library\/LaunchDaemons\/com\.awg\.killswitch\.plist/),
      expect.stringMatching(/^write \/Library\/LaunchDaemons\/com\.awg\.daemon\.plist/),
      'launchctl bootout system/com.awg.daemon',
      'launchctl bootstrap system /Library/LaunchDaemons/com.awg.daemon.plist',
    ]);
    const root = tmp();
    await launchdManager.install(INV, { exec: new RecordingExec(), root });
    expect(readFileSync(join(root, 'Library/LaunchDaemons/com.awg.daemon.plist'), 'utf8')).toBe(
      renderLaunchdPlist(INV),
    );
    expect(readFileSync(join(root, 'Library/LaunchDaemons/com.awg.killswitch.plist'), 'utf8')).toBe(
      renderKillSwitchLaunchdPlist(INV),
    );
    const gone = new RecordingExec();
    expect(await launchdManager.uninstall({ exec: gone, root })).toMatchObject({ removed: true });
    expect(existsSync(join(root, 'Library/LaunchDaemons/com.awg.killswitch.plist'))).toBe(false);
  });

  it('other platforms: a typed unsupported error', async () => {
    expect(await (await loadPlatform('linux')).serviceManager()).toBe(systemdManager);
    expect(await (await loadPlatform('darwin')).serviceManager()).toBe(launchdManager);
    const other = await loadPlatform('win32');
    await expect(other.serviceManager()).rejects.toThrow(/not supported on win32/);
  });
});

describe('awg service (CLI)', () => {
  it('install --dry-run prints every step and writes nothing', async () => {
    const unit = '/etc/systemd/system/awg.service';
    const before = existsSync(unit);
    const c = capture();
    const code = await main(
      [
        'node',
        'awg',
        'service',
        'install',
        '--dry-run',
        '--platform',
        'linux',
        '--config',
        '/etc/awg/awg.yaml',
      ],
      c.io,
    );
    expect(code).toBe(0);
    expect(c.err()).toContain(`[#] write ${unit}`);
    expect(c.err()).toContain(
      '[#] systemctl daemon-reload\n[#] systemctl enable awg-killswitch.service\n[#] systemctl enable --now awg.service\n',
    );
    expect(c.out()).toContain('Dry run: nothing was changed');
    expect(c.out()).toContain(
      'Would enable the early unit /etc/systemd/system/awg-killswitch.service',
    );
    expect(existsSync(unit)).toBe(before);
  });

  it('install --print shows the unit; --root installs into a tree', async () => {
    const c = capture();
    expect(
      await main(
        [
          'node',
          'awg',
          'service',
          'install',
          '--print',
          '--platform',
          'linux',
          '--config',
          '/etc/awg/awg.yaml',
          '--node',
          '/usr/bin/node',
          '--bin',
          '/opt/awg/bin/awg.js',
          '--metrics',
        ],
        c.io,
      ),
    ).toBe(0);
    expect(c.out()).toContain(
      'ExecStart=/usr/bin/node --max-semi-space-size=1 --v8-pool-size=2 --expose-gc --no-maglev /opt/awg/bin/awg.js daemon --config /etc/awg/awg.yaml --metrics 127.0.0.1:9586\n',
    );
    const root = tmp();
    const exec = new RecordingExec();
    const c2 = capture();
    expect(
      await serviceCommand(
        c2.io,
        'install',
        { root, platform: 'linux', config: '/etc/awg/awg.yaml' },
        { exec },
      ),
    ).toBe(0);
    expect(readFileSync(join(root, 'etc/systemd/system/awg.service'), 'utf8')).toMatch(
      /daemon --config \/etc\/awg\/awg\.yaml/,
    );
  });

  it('status: exit 2 when not installed', async () => {
    const c = capture();
    expect(
      await serviceCommand(
        c.io,
        'status',
        { root: tmp(), platform: 'linux', socket: join(tmp(), 'none.sock') },
        { exec: new RecordingExec() },
      ),
    ).toBe(2);
    expect(c.out()).toMatch(/service: not installed/);
    expect(c.out()).toMatch(/api: no answer on/);
  });
});
