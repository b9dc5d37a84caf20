/**
 * Last-resort handlers for every awg process (the CLI, `awg daemon`/`awg up`, a detached
 * `awg engine`, the `awg placer` child; all start in bin/awg.js): an uncaught exception or an
 * unhandled promise rejection is logged and ends the process with exit code 70 (the `bug`
 * kind, EX_SOFTWARE). Nothing carries on after one — state may be half-changed — and nothing
 * is torn down on the way out: the kernel keeps what was installed (a kill switch stays
 * closed), and the next start observes and adopts or repairs it.
 *
 * By default the report goes to stderr; the daemon and the engine route it through their
 * JSON log (`setCrashLog`).
 */

export const CRASH_EXIT_CODE = 70;

type CrashLog = (what: string, err: unknown) => void;

const toStderr: CrashLog = (what, err) => {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`awg: fatal: ${what}: ${detail}\n`);
};

let log: CrashLog = toStderr;
let installed = false;

/** Route crash reports through this process's log (pino's fatal is synchronous). */
export function setCrashLog(fn: CrashLog): void {
  log = (what, err) => {
    try {
      fn(what, err);
    } catch {
      toStderr(what, err);
    }
  };
}

function crash(what: string, err: unknown): never {
  try {
    log(what, err);
  } finally {
    process.exit(CRASH_EXIT_CODE);
  }
}

/** Install the handlers once per process. */
export function installCrashHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (err, origin) =>
    crash(
      origin === 'unhandledRejection' ? 'unhandled promise rejection' : 'uncaught exception',
      err,
    ),
  );
  process.on('unhandledRejection', (reason) => crash('unhandled promise rejection', reason));
}
