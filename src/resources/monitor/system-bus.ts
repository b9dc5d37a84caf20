/**
 * The system-bus wake source (Linux): a long-running `busctl monitor --system --json=short`
 * child with the match rules of system-bus-parse.ts, read line by line. It only says "this
 * happened" (resolved started, NetworkManager reconfigured, resume); the daemon re-observes.
 *
 * - No D-Bus library exists for Node here; busctl ships with systemd, wherever resolved and
 *   logind are. Without busctl the watch is a no-op for good.
 * - No system bus yet (early boot, containers) or the monitor died: it is started again after
 *   a backoff (1 s doubling to 60 s; back to 1 s once a monitor ran a minute).
 * - The child never outlives the daemon, SIGKILL included: busctl runs under a shell that
 *   kills it when its stdin (a pipe from us) reaches end of file, which the kernel causes
 *   when our end closes, however we end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { SYSTEM_BUS_MATCHES, classifyBusLine, type BusEvent } from './system-bus-parse.js';
import type { SystemWatch, SystemWatchOptions } from './types.js';

export interface SystemBusWatchOptions extends SystemWatchOptions {
  /** restart delays (default 1 s doubling to 60 s) */
  backoffMs?: { initial: number; max: number };
  /** a monitor that ran this long resets the backoff (default 60 s) */
  healthyAfterMs?: number;
  /** the monitor's program and arguments (tests); default busctl with our match rules */
  command?: { cmd: string; args: string[] };
  /** told when a monitor ends (tests, diagnostics) */
  onExit?(info: { code: number | null; stderr: string; restartInMs: number | undefined }): void;
}

/** busctl under a shell that kills it once its stdin (our pipe) ends */
const GUARD = [
  'exec 3<&0',
  '"$@" </dev/null &',
  'p=$!',
  '(read _ <&3; kill "$p" 2>/dev/null) >/dev/null 2>&1 &',
  'wait "$p"',
].join('\n');

export function busctlMonitorCommand(): { cmd: string; args: string[] } {
  return {
    cmd: 'busctl',
    args: ['monitor', '--system', '--json=short', ...SYSTEM_BUS_MATCHES.map((m) => `--match=${m}`)],
  };
}

export function watchSystemBus(o: SystemBusWatchOptions): SystemWatch & { close(): Promise<void> } {
  const { initial, max } = o.backoffMs ?? { initial: 1000, max: 60_000 };
  const healthyAfter = o.healthyAfterMs ?? 60_000;
  const command = o.command ?? busctlMonitorCommand();
  let delay = initial;
  let closed = false;
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let exited: Promise<void> = Promise.resolve();

  function start(): void {
    if (closed) return;
    const startedAt = Date.now();
    const c = spawn('sh', ['-c', GUARD, 'sh', command.cmd, ...command.args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = c;
    let stderr = '';
    let missing = false;
    c.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    // the shell reports a missing program as status 127
    createInterface({ input: c.stdout! }).on('line', (line) => {
      const e: BusEvent | undefined = classifyBusLine(line);
      if (e && !closed) o.onEvent(e);
    });
    c.on('error', () => {
      missing = true;
    });
    exited = new Promise<void>((res) =>
      c.on('close', (code) => {
        child = undefined;
        // the guard's reader still holds our pipe when busctl ended on its own
        c.stdin?.destroy();
        if (Date.now() - startedAt >= healthyAfter) delay = initial;
        const gone = missing || code === 127;
        const restartInMs = closed || gone ? undefined : delay;
        o.onExit?.({ code, stderr, restartInMs });
        if (restartInMs !== undefined) {
          timer = setTimeout(start, restartInMs);
          timer.unref();
          delay = Math.min(delay * 2, max);
        }
        res();
      }),
    );
    c.stdin!.on('error', () => {});
  }
  start();

  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      // end of our pipe: the guard kills busctl, the shell's wait returns
      child?.stdin?.end();
      await exited;
    },
  };
}
