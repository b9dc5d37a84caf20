/**
 * `awg daemon [--config FILE]`: the service. The same core as `awg up` (loop + in-process
 * engines); without --config it follows the file of the last apply. The API socket is
 * started from `onStarted` (see cli/foreground.ts).
 */
import { resolve } from 'node:path';
import type { Io } from '../output.js';
import { runForeground } from '../foreground.js';
import { printError } from '../output.js';
import { AwgError, toAwgError } from '../../errors.js';
import { UPDATE_CHECK_MODES, type UpdateCheckMode } from '../../daemon/update-watch.js';
import { DEFAULT_SOCKET } from '../../daemon/socket.js';
import { setCrashLog } from '../crash.js';
import { selectionAtStart, type SelectionOptions } from '../selection.js';

export interface DaemonCommandOptions extends SelectionOptions {
  config?: string;
  stateDir?: string;
  verbose?: boolean;
  /** API socket (default $AWG_SOCKET, else util/paths.ts: /run/awg/awg.sock; macOS /var/run/awg/awg.sock) */
  socket?: string;
  /** group allowed on the socket (mode 0660) */
  socketGroup?: string;
  /** `--metrics [host:port]` */
  metrics?: string | boolean;
  /** refuse API mutations: the followed repository is the only source of truth */
  locked?: boolean;
  /** `--update-check off|local|refresh` (daemon/update-watch.ts; default local) */
  updateCheck?: string;
  /** SSH allowed signers: the rollout trailer needs a verified commit (daemon/rollout-gate.ts) */
  allowedSigners?: string;
}

export async function daemonCommand(io: Io, o: DaemonCommandOptions): Promise<number> {
  const socketPath = resolve(o.socket || process.env.AWG_SOCKET || DEFAULT_SOCKET);
  // gRPC and prom-client load here, not when every other command starts
  const { startApiServer } = await import('../../daemon/server.js');
  const { DEFAULT_METRICS_LISTEN, parseListen, startMetricsServer } =
    await import('../../daemon/metrics.js');
  const { createLogger } = await import('../../util/logger.js');
  const log = createLogger({
    component: 'daemon',
    to: 1,
    ...(o.verbose ? { level: 'debug' as const } : {}),
  });
  // a crash is logged as a fatal JSON line; the process ends with 70 and the kill switch stays
  setCrashLog((what, err) =>
    log.fatal({ err }, `${what}: ${err instanceof Error ? err.message : String(err)}; exiting`),
  );
  const metrics = o.metrics === true ? DEFAULT_METRICS_LISTEN : o.metrics || undefined;
  try {
    if (metrics && !parseListen(metrics).loopback)
      log.warn({ metrics }, `metrics on ${metrics} are reachable from other hosts`);
    const selection = await selectionAtStart(o);
    return await runForeground(
      io,
      {
        configPath: o.config ? resolve(o.config) : undefined,
        stateDir: o.stateDir,
        ...(selection ? { selection } : {}),
        ...(o.allowedSigners ? { allowedSigners: resolve(o.allowedSigners) } : {}),
        ...(o.updateCheck ? { updates: { mode: updateCheckMode(o.updateCheck) } } : {}),
      },
      {
        log,
        owner: { command: 'daemon', socket: socketPath },
        // the API (and metrics) start after the core; if they cannot, the core stops without
        // teardown (the kill switch stays) and the daemon exits non-zero
        onStarted: async (core) => {
          const closers: (() => Promise<void>)[] = [];
          try {
            const api = await startApiServer(core, {
              socketPath,
              ...(o.socketGroup ? { group: o.socketGroup } : {}),
              ...(selection ? { selection } : {}),
              ...(o.locked ? { locked: true } : {}),
              log: (level, message, fields) => log[level](fields, message),
              onError: (e) => log.error({ err: e }, `API socket: ${e.message}`),
            });
            closers.push(api.close);
            log.info(
              {
                socket: api.socketPath,
                mode: o.socketGroup ? '0660' : '0600',
                ...(o.socketGroup ? { group: o.socketGroup } : {}),
              },
              `API on ${api.socketPath}`,
            );
            if (metrics) {
              const m = await startMetricsServer(core, metrics);
              closers.push(m.close);
              const url = `http://${m.address.host.includes(':') ? `[${m.address.host}]` : m.address.host}:${m.address.port}/metrics`;
              log.info({ metrics: url }, `metrics on ${url}`);
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

function updateCheckMode(v: string): UpdateCheckMode {
  const m = UPDATE_CHECK_MODES.find((x) => x === v);
  if (!m)
    throw new AwgError(
      'invalid-config',
      `--update-check ${v}: expected ${UPDATE_CHECK_MODES.join(', ')}`,
    );
  return m;
}
