/**
 * `awg service install|uninstall|status`: run `awg daemon` as a system service (a systemd
 * unit on Linux, a LaunchDaemon on macOS). Every step is printed as `[#] …`; `--dry-run`
 * prints them and changes nothing; `--root DIR` installs into another tree (offline enable,
 * the running service manager is not touched); `--print` only shows the file.
 */
import { resolve } from 'node:path';
import { AWG_BIN } from '../../util/package-root.js';
import { AwgError, toAwgError } from '../../errors.js';
import { checkRefName } from '../../util/git-sync.js';
import { ProcessExec, type Exec } from '../../util/exec.js';
import { socketAnswers, socketFrom } from '../../daemon/socket.js';
import { loadPlatform } from '../../resources/registry.js';
import type { DaemonInvocation } from '../../resources/service/render.js';
import type { ServiceUserState } from '../../resources/service/manager.js';
import { printError, TextReporter, type Io } from '../output.js';

export interface ServiceOptions {
  config?: string;
  stateDir?: string;
  socket?: string;
  socketGroup?: string;
  metrics?: string | boolean;
  dryRun?: boolean;
  root?: string;
  print?: boolean;
  json?: boolean;
  verbose?: boolean;
  /** hidden: render/install for another platform (tests, packaging) */
  platform?: string;
  /** hidden: the node binary and awg entry point written into the unit */
  node?: string;
  bin?: string;
  /** follow a repository (docs/fleet.md) */
  git?: string;
  branch?: string;
  path?: string;
  allowedSigners?: string;
  interval?: string;
  locked?: boolean;
  host?: string;
  labelsFile?: string;
}

export { AWG_BIN };

const STATE_TEXT: Record<ServiceUserState, string> = {
  'not-installed': 'not installed',
  'needs-approval':
    'needs approval: installed, but the service manager will not start it (macOS: allow awg in System Settings → General → Login Items; systemd: the unit is masked)',
  outdated:
    'outdated: it differs from what this awg writes, or runs another node or awg; run `awg service install` again',
  'not-loaded':
    'installed, not loaded: the service manager does not know it (macOS: never bootstrapped or booted out; run `awg service install`)',
  running: 'installed and running',
  installed: 'installed and loaded, not running',
};

export function invocation(o: ServiceOptions): DaemonInvocation {
  if (o.git !== undefined && !o.path)
    throw new AwgError(
      'invalid-config',
      '--git needs --path: the directory of the checkout the daemon follows',
    );
  if (o.git === undefined && (o.path || o.branch || o.allowedSigners || o.interval))
    throw new AwgError(
      'invalid-config',
      '--path, --branch, --allowed-signers and --interval go with --git',
    );
  if (
    o.git !== undefined &&
    (o.git === '' || o.git.startsWith('-') || /^ext::/i.test(o.git) || /[\s\0]/.test(o.git))
  )
    throw new AwgError(
      'invalid-config',
      `--git "${o.git.slice(0, 80)}" is not a repository URL awg clones (no ext::, no leading "-", no spaces)`,
    );
  const path = o.path ? resolve(o.path) : undefined;
  // with --git the config is a file of the checkout: relative to it, default awg.yaml
  const config = path
    ? resolve(path, o.config ?? 'awg.yaml')
    : o.config
      ? resolve(o.config)
      : undefined;
  if (path && config && !config.startsWith(path + '/'))
    throw new AwgError('invalid-config', `--config ${o.config} lies outside the checkout ${path}`);
  if (o.branch) checkRefName('--branch', o.branch);
  return {
    node: o.node ?? process.execPath,
    bin: o.bin ?? AWG_BIN,
    ...(config ? { config } : {}),
    ...(o.host ? { host: o.host } : {}),
    ...(o.labelsFile ? { labelsFile: resolve(o.labelsFile) } : {}),
    ...(o.locked ? { locked: true } : {}),
    ...(o.git !== undefined && path
      ? {
          git: {
            url: o.git,
            branch: o.branch ?? 'main',
            path,
            ...(o.allowedSigners ? { allowedSigners: resolve(o.allowedSigners) } : {}),
            ...(o.interval ? { interval: o.interval } : {}),
          },
        }
      : {}),
    ...(o.stateDir ? { stateDir: resolve(o.stateDir) } : {}),
    ...(o.socket ? { socket: resolve(o.socket) } : {}),
    ...(o.socketGroup ? { socketGroup: o.socketGroup } : {}),
    ...(o.metrics ? { metrics: o.metrics === true ? '127.0.0.1:9586' : o.metrics } : {}),
  };
}

export async function serviceCommand(
  io: Io,
  action: 'install' | 'uninstall' | 'status',
  o: ServiceOptions,
  deps: { exec?: Exec } = {},
): Promise<number> {
  try {
    const m = await (
      await loadPlatform((o.platform as NodeJS.Platform | undefined) ?? process.platform)
    ).serviceManager();
    const exec = deps.exec ?? new ProcessExec(new TextReporter(io, o.verbose), Boolean(o.dryRun));
    const ctx = { exec, ...(o.root ? { root: resolve(o.root) } : {}) };
    switch (action) {
      case 'install': {
        const d = invocation(o);
        if (o.print) {
          io.out(m.render(d));
          return 0;
        }
        const r = await m.install(d, ctx);
        const what = exec.dryRun
          ? 'Dry run: nothing was changed'
          : r.changed
            ? `Installed ${r.path}`
            : `${r.path} is up to date`;
        io.out(
          `${what}; the daemon ${ctx.root ? 'is enabled in ' + ctx.root : 'runs as a service'}.\n`,
        );
        if (r.bootPath)
          io.out(
            r.boot
              ? `${exec.dryRun ? 'Would write' : 'Wrote'} ${r.bootPath}: ${r.boot}.\n`
              : `${exec.dryRun ? 'Would enable' : 'Enabled'} the early unit ${r.bootPath}: at boot it loads the kill switch of the last apply before any network is configured (only while the kill switch is on).\n`,
          );
        if (!d.config)
          io.out('note: no --config: the daemon follows the file of the last `awg apply`.\n');
        if (d.git)
          io.out(
            `${exec.dryRun ? 'Would follow' : 'Following'} ${d.git.url} (${d.git.branch}) in ${d.git.path}: awg-sync.timer pulls every ${d.git.interval ?? '1min'}${d.git.allowedSigners ? ', signed commits only' : ''}; the daemon applies ${d.config}.\n`,
          );
        return 0;
      }
      case 'uninstall': {
        const r = await m.uninstall(ctx);
        io.out(
          exec.dryRun
            ? 'Dry run: nothing was changed.\n'
            : r.removed
              ? `Removed ${r.path}; the service is stopped.\n`
              : `Not installed (${r.path} absent).\n`,
        );
        if (!exec.dryRun)
          io.out('note: with the kill switch on, traffic stays blocked until `awg down`.\n');
        return 0;
      }
      case 'status': {
        const st = await m.status(ctx, undefined, {
          node: o.node ?? process.execPath,
          bin: o.bin ?? AWG_BIN,
        });
        const socket = socketFrom(o.socket);
        const api = (await socketAnswers(socket)).ok;
        if (o.json) io.out(JSON.stringify({ ...st, socket, apiAnswers: api }, null, 2) + '\n');
        else {
          io.out(`service: ${STATE_TEXT[st.state]} (${st.path})\n`);
          if (st.active !== undefined)
            io.out(
              `running: ${st.active ? `yes${st.pid ? ` (pid ${st.pid})` : ''}` : 'no'}; enabled: ${st.enabled ? 'yes' : 'no'}\n`,
            );
          for (const [k, v] of Object.entries(st.detail)) io.out(`  ${k}: ${v}\n`);
          io.out(`api: ${api ? 'answers' : 'no answer'} on ${socket}\n`);
        }
        // 0: running, or installed where the manager could not say (no systemd, --root)
        return st.installed &&
          st.active !== false &&
          st.state !== 'not-loaded' &&
          st.state !== 'needs-approval'
          ? 0
          : 2;
      }
    }
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
