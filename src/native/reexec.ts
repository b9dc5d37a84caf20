/**
 * Re-executing this process with Node flags it was started without: `execve(2)` of the same
 * Node binary with the same arguments (same pid, same open descriptors, same session), so
 * that `awg up` and `awg daemon` started from a shell, a container or a unit of the user's run
 * with the flags of awg's long-running processes (util/node-flags.ts: V8's young generation at
 * 1 MiB instead of 16, which is most of what a busy tunnel's process holds after the traffic).
 * Linux only (libc through koffi); elsewhere, and when execve fails, the process goes on as it
 * is. Measurements: bench/RESULTS.md, section "Step 14", "Memory".
 *
 * Node marks its standard streams close-on-exec once it has used them (O_CLOEXEC on 0, 1 and
 * 2): left so, the new process would start with /dev/null for stdout and every event and log
 * line would vanish. The descriptors that must cross the execve are therefore made inheritable
 * first: 0-2 and the ones handed to us by number (AWG_PROC_CONNECTOR_FD, systemd's LISTEN_FDS).
 */
import koffi from 'koffi';
import { fcntl, rawLibcFunc } from './libc.js';

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Set in the new process: it never re-executes itself again. Any value opts out beforehand. */
export const REEXEC_ENV = 'AWG_NODE_FLAGS';

/** The flags of `wanted` whose name is in neither `execArgv` nor NODE_OPTIONS. */
export function missingFlags(
  wanted: readonly string[],
  execArgv: readonly string[],
  nodeOptions = '',
): string[] {
  const name = (f: string) => f.split('=')[0]!;
  const have = new Set([...execArgv, ...nodeOptions.split(/\s+/).filter(Boolean)].map(name));
  return wanted.filter((f) => !have.has(name(f)));
}

/** The descriptors the new process must find open: stdio and those named by the environment. */
export function inheritedFds(env: NodeJS.ProcessEnv): number[] {
  const fds = new Set([0, 1, 2]);
  const n = (v: string | undefined) => (v && /^\d{1,4}$/.test(v) ? Number(v) : undefined);
  const connector = n(env.AWG_PROC_CONNECTOR_FD);
  if (connector !== undefined) fds.add(connector);
  const listen = n(env.LISTEN_FDS);
  if (listen !== undefined && String(process.pid) === env.LISTEN_PID)
    for (let i = 0; i < Math.min(listen, 64); i++) fds.add(3 + i);
  return [...fds].sort((a, b) => a - b);
}

/**
 * Replaces this process by the same program with `flags` added before its own arguments,
 * when some are missing and REEXEC_ENV is unset; returns only when it does not (nothing
 * missing, opted out, not Linux, or execve refused: the reason).
 */
export function reexecWithFlags(flags: readonly string[]): string {
  if (process.env[REEXEC_ENV] !== undefined) return `${REEXEC_ENV} is set`;
  const missing = missingFlags(flags, process.execArgv, process.env.NODE_OPTIONS);
  if (missing.length === 0) return 'no flag missing';
  const execve = rawLibcFunc<
    (path: string, argv: (string | null)[], envp: (string | null)[]) => number
  >('int execve(const char *path, const char **argv, const char **envp)');
  if (!execve) return 'execve is not available';
  for (const fd of inheritedFds(process.env)) {
    const flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && flags & FD_CLOEXEC) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  const argv = [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)];
  const env = { ...process.env, [REEXEC_ENV]: missing.join(' ') };
  const envp = Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  execve(process.execPath, [...argv, null], [...envp, null]);
  return `execve failed (errno ${koffi.errno()})`;
}
