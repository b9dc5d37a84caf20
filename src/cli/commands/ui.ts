/**
 * `awg ui [--socket S] [--port N] [--no-open]`: the dashboard (docs/ui.md). Serves the page
 * on 127.0.0.1 through the bridge (cli/ui/bridge.ts), which talks to the daemon's socket with
 * this user's credentials: root gets the apply panel, a socket-group member a read-only view,
 * anyone else the daemon's refusal. Prints the URL with its per-run token and opens it in a
 * browser when there is a display. Runs until SIGINT or SIGTERM (exit 0).
 */
import { spawn } from 'node:child_process';
import { AwgError, toAwgError } from '../../errors.js';
import { socketFrom } from '../../daemon/socket.js';
import { packagePath } from '../../util/package-root.js';
import { startBridge } from '../ui/bridge.js';
import { printError, type Io } from '../output.js';

export interface UiOptions {
  socket?: string | undefined;
  port?: string | undefined;
  /** commander's --no-open */
  open?: boolean | undefined;
}

/** Open `url` in the user's browser when there is one to open; never fails. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const mac = process.platform === 'darwin';
  if (!mac && !env.DISPLAY && !env.WAYLAND_DISPLAY) return false;
  try {
    const child = spawn(mac ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

export async function uiCommand(
  io: Io,
  o: UiOptions,
  deps: { until?: Promise<unknown> } = {},
): Promise<number> {
  try {
    let port = 0;
    if (o.port !== undefined) {
      port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new AwgError('invalid-config', `--port ${o.port}: not a port number (0-65535)`);
    }
    const uid = process.getuid?.() ?? -1;
    const bridge = await startBridge({
      socketPath: socketFrom(o.socket),
      assetsDir: packagePath('share', 'ui'),
      port,
      session: { root: uid === 0, uid },
    });
    io.out(`awg ui: ${bridge.url}\n`);
    io.out(
      uid === 0
        ? 'as root: the page can diff and apply a config. Ctrl-C stops it.\n'
        : 'read-only unless the daemon lets this user apply. Ctrl-C stops it.\n',
    );
    if (o.open !== false) openBrowser(bridge.url);
    await (deps.until ??
      new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      }));
    await bridge.close();
    return 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
