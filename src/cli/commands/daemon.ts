/**
 * `awg daemon [--config FILE]`: the service. The same core as `awg up` (loop + in-process
 * engines); without --config it follows the file of the last apply. The API socket is
 * started from `onStarted` (see cli/foreground.ts).
 */
import { resolve } from 'node:path';
import type { Io } from '../output.js';
import { runForeground } from '../foreground.js';
import { printError } from '../output.js';
import { toAwgError } from '../../errors.js';
import { DEFAULT_SOCKET } from '../../daemon/socket.js';

export interface DaemonCommandOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
  verbose?: boolean;
  /** API socket (default $AWG_SOCKET or /run/awg/awg.sock) */
  socket?: string;
  /** group allowed on the socket (mode 0660) */
  socketGroup?: string;
  /** `--metrics [host:port]` */
  metrics?: string | boolean;
}

export async function daemonCommand(io: Io, o: DaemonCommandOptions): Promise<number> {
  const socketPath = resolve(o.socket || process.env.AWG_SOCKET || DEFAULT_SOCKET);
  // gRPC and prom-client load here, not when every other command starts
  const { startApiServer } = await import('../../daemon/server.js');
  const { DEFAULT_METRICS_LISTEN, parseListen, startMetricsServer } = await import('../../daemon/metrics.js');
  const metrics = o.metrics === true ? DEFAULT_METRICS_LISTEN : o.metrics || undefined;
  try {
    if (metrics && !parseListen(metrics).loopback) io.err(`awg: warning: metrics on ${metrics} are reachable from other hosts\n`);
    return await runForeground(
      io,
      { configPath: o.config ? resolve(o.config) : undefined, stateDir: o.stateDir },
      {
        json: o.json ?? true,
        verbose: o.verbose,
        // the API (and metrics) start after the core; if they cannot, the core stops without
        // teardown (the kill switch stays) and the daemon exits non-zero
        onStarted: async (core) => {
          const closers: (() => Promise<void>)[] = [];
          try {
            const api = await startApiServer(core, { socketPath, ...(o.socketGroup ? { group: o.socketGroup } : {}) });
            closers.push(api.close);
            io.err(`awg: API on ${api.socketPath} (mode ${o.socketGroup ? `0660, group ${o.socketGroup}` : '0600'})\n`);
            if (metrics) {
              const m = await startMetricsServer(core, metrics);
              closers.push(m.close);
              io.err(`awg: metrics on http://${m.address.host.includes(':') ? `[${m.address.host}]` : m.address.host}:${m.address.port}/metrics\n`);
            }
          } catch (e) {
            for (const c of closers.reverse()) await c();
            await core.stop({ teardown: false });
            throw e;
          }
          return async () => {
            for (const c of closers.reverse()) await c();
          };
        },
      },
    );
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
