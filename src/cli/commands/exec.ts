/**
 * `awg exec (--tunnel T | --direct | --rule NAME) -- CMD ARGS…`: run a command in a tunnel's
 * (or rule's) cgroup with no window at all (the `mullvad-exclude` approach).
 *
 * Node cannot execve, so awg moves ITSELF first (its pid into `cgroup.procs`: the whole
 * thread group moves) and only then spawns the command, which inherits the cgroup at fork:
 * every socket the command ever creates is matched by `socket cgroupv2` (a socket's cgroup is
 * fixed at creation: docs/platform-linux.md#socket-cgroupv2). stdio is inherited; the exit
 * status is passed on (a
 * command killed by a signal kills awg with the same signal). SIGTERM, SIGHUP, SIGUSR2 are
 * forwarded; SIGINT and SIGQUIT only when stdin is not a terminal (a terminal already sends
 * them to the whole foreground process group, command included).
 *
 * Where per-app routing is the daemon's flow router (macOS, Platform.perApp 'flow-router';
 * no cgroups), awg asks the daemon instead (its Exec call, held open while the command runs)
 * to route awg's own pid and its descendants by the choice, and spawns the command only once
 * the daemon confirmed: the command's ppid is awg, so its first connection is already routed
 * (resources/flow/exec-routes.ts). PF redirects no socket of root's (the router's loop
 * guard), so a command run as root would not be routed: as root, the command runs as the
 * user who called sudo (SUDO_UID/SUDO_GID; Node's spawn sets no supplementary groups and
 * leaves the environment as sudo gave it), and without them awg exec refuses. When the daemon
 * ends the registration first (down, a config without per-app rules, the tunnel or rule
 * removed, the daemon stopping), awg exec says why, stops the command with SIGTERM and exits
 * with the error's status: its new connections would no longer follow the choice.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { AwgError, toAwgError } from '../../errors.js';
import { parseCgroup2Mount } from '../../resources/cgroup/parse.js';
import { resolveExecCgroup, type ExecChoice } from '../../procs/exec-target.js';
import { parseCgroupV2 } from '../../procs/scan.js';
import { relativeCgroup } from '../../procs/cgroups.js';
import { describeCorrupt, FileStateStore } from '../../util/state.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { printError, type Io } from '../output.js';
import { perAppOf, type Platform } from '../../resources/registry.js';
import { describeChoice } from '../../resources/flow/exec-routes.js';
import { daemonFor, needsDaemon } from '../../daemon/client.js';

export interface ExecOptions {
  tunnel?: string;
  direct?: boolean;
  rule?: string;
  stateDir?: string;
  /** the daemon's socket (macOS: awg exec goes through the daemon) */
  socket?: string;
}

/** injection for tests */
export interface ExecDeps {
  platform?: Pick<Platform, 'perApp'>;
  euid?: number;
  env?: NodeJS.ProcessEnv;
  /** how the command is started (a test raises a signal inside it) */
  spawn?: typeof spawn;
}

const FORWARD: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR2', 'SIGINT', 'SIGQUIT'];

function choiceOf(o: ExecOptions): ExecChoice {
  const n = [o.tunnel !== undefined, o.direct === true, o.rule !== undefined].filter(
    Boolean,
  ).length;
  if (n !== 1)
    throw new AwgError(
      'invalid-config',
      'give exactly one of --tunnel NAME, --direct or --rule NAME',
    );
  if (o.tunnel !== undefined) return { tunnel: o.tunnel };
  if (o.rule !== undefined) return { rule: o.rule };
  return { direct: true };
}

/** Move this process into `path` (relative to the v2 mount) and check that it landed. */
export function placeSelf(path: string, mountinfo = '/proc/self/mountinfo'): void {
  const mount = parseCgroup2Mount(readFileSync(mountinfo, 'utf8'));
  if (!mount) throw new AwgError('unsupported', 'no cgroup v2 hierarchy is mounted');
  const procs = join(mount.mountPoint, path, 'cgroup.procs');
  try {
    writeFileSync(procs, String(process.pid));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new AwgError('driver', `cgroup ${path} does not exist (run awg apply)`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM')
      throw new AwgError(
        'permission',
        `cannot move into ${procs}: ${code} (awg exec needs root, or write access to that file and to the common ancestor cgroup)`,
        { cause: e },
      );
    throw new AwgError('driver', `cannot move into ${procs}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const now = relativeCgroup(
    parseCgroupV2(readFileSync('/proc/self/cgroup', 'utf8')) ?? '',
    mount.root,
  );
  if (now !== path)
    throw new AwgError(
      'driver',
      `after writing ${procs} this process is in ${now ?? 'an unknown cgroup'}, not ${path}`,
    );
}

/**
 * macOS: whom the command runs as (undefined: as awg). PF redirects no socket of root's, so a
 * command run as root would not be routed: as root, the user sudo came from, else refused.
 */
export function commandUser(
  euid: number,
  env: NodeJS.ProcessEnv,
): { uid: number; gid: number } | undefined {
  if (euid !== 0) return undefined;
  const uid = env.SUDO_UID ?? '';
  const gid = env.SUDO_GID ?? '';
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid) || Number(uid) === 0)
    throw new AwgError(
      'unsupported',
      "awg exec on macOS cannot route a command that runs as root: PF leaves root's connections to the routing table (the flow router's loop guard), so the choice would not apply",
      {
        hint: 'run it with sudo from your user account (the command then runs as that user, SUDO_UID and SUDO_GID), or set SUDO_UID and SUDO_GID to the user it should run as',
      },
    );
  return { uid: Number(uid), gid: Number(gid) };
}

export async function execCommand(
  io: Io,
  cmd: string[],
  o: ExecOptions,
  deps: ExecDeps = {},
): Promise<number> {
  let path: string;
  try {
    if (cmd.length === 0)
      throw new AwgError(
        'invalid-config',
        'no command given: awg exec --tunnel NAME -- COMMAND [ARGS…]',
      );
    if ((deps.platform?.perApp ?? perAppOf()) === 'flow-router')
      return await execThroughDaemon(io, cmd, choiceOf(o), o, deps);
    const state = new FileStateStore(stateDirFrom(o.stateDir), {
      onCorrupt: (c) => io.err(`warning: ${describeCorrupt(c)}\n`),
    });
    path = resolveExecCgroup(new AppliedStore(state).load(), choiceOf(o));
    placeSelf(path);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
  return runCommand(io, cmd, {}, { ...(deps.spawn ? { spawn: deps.spawn } : {}) });
}

/** macOS: the daemon routes this process and its descendants while the command runs (see the file comment). */
async function execThroughDaemon(
  io: Io,
  cmd: string[],
  choice: ExecChoice,
  o: ExecOptions,
  deps: ExecDeps,
): Promise<number> {
  const env = deps.env ?? process.env;
  const user = commandUser(deps.euid ?? process.geteuid?.() ?? 0, env);
  const d = await daemonFor({ ...(o.socket ? { socket: o.socket } : {}) }, env);
  if (!d.client) throw needsDaemon('awg exec on macOS', d.reason);
  const client = d.client;
  let child: ChildProcess | undefined;
  let ended: AwgError | undefined;
  let session: { cancel(): void };
  try {
    session = await client.execSession(choice, (err) => {
      ended = err;
      io.err(
        `awg exec: ${err.message}; stopping ${cmd[0]}: its new connections would no longer follow ${describeChoice(choice)}\n`,
      );
      child?.kill('SIGTERM');
    });
  } catch (e) {
    client.close();
    throw e;
  }
  try {
    return await runCommand(io, cmd, user ?? {}, {
      ...(deps.spawn ? { spawn: deps.spawn } : {}),
      onSpawn: (c) => {
        child = c;
        if (ended) c.kill('SIGTERM');
      },
      stoppedBy: () => ended,
    });
  } finally {
    session.cancel();
    client.close();
  }
}

/**
 * Spawn the command with inherited stdio, forward signals, pass its exit status on. A command
 * stopped because of `stoppedBy()` exits awg with that error's status instead of its signal.
 */
export function runCommand(
  io: Io,
  cmd: string[],
  spawnOpts: Pick<SpawnOptions, 'uid' | 'gid'>,
  hooks: {
    spawn?: typeof spawn;
    onSpawn?(c: ChildProcess): void;
    stoppedBy?(): AwgError | undefined;
  } = {},
): Promise<number> {
  return new Promise<number>((resolve) => {
    // The handlers go in before the spawn: the command may run (and a caller that waits for
    // its first output may signal awg) before spawn() returns to JavaScript. A signal that
    // comes in between is held by libuv and reaches a handler after the spawn, with `child`
    // set; installed after it, the signal's default action would end awg and orphan the command.
    let child: ChildProcess | undefined;
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const sig of FORWARD) {
      const h = () => {
        if ((sig === 'SIGINT' || sig === 'SIGQUIT') && process.stdin.isTTY) return;
        child?.kill(sig);
      };
      handlers.set(sig, h);
      process.on(sig, h);
    }
    const done = (code: number) => {
      for (const [sig, h] of handlers) process.off(sig, h);
      resolve(code);
    };
    try {
      child = (hooks.spawn ?? spawn)(cmd[0]!, cmd.slice(1), { stdio: 'inherit', ...spawnOpts });
    } catch (e) {
      io.err(`awg exec: ${cmd[0]}: ${(e as Error).message}\n`);
      done(126);
      return;
    }
    hooks.onSpawn?.(child);
    child.on('error', (e: NodeJS.ErrnoException) => {
      io.err(`awg exec: ${cmd[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      done(e.code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      const stopped = hooks.stoppedBy?.();
      if (stopped) {
        done(stopped.exitCode);
        return;
      }
      if (signal) {
        for (const [s, h] of handlers) process.off(s, h);
        // die the same way, so a caller sees the command's status
        try {
          process.kill(process.pid, signal);
        } catch {
          /* fall through */
        }
        resolve(128 + (constants.signals[signal] ?? 0));
        return;
      }
      done(code ?? 1);
    });
  });
}
