/**
 * `awg exec (--tunnel T | --direct | --rule NAME) -- CMD ARGS…`: run a command in a tunnel's
 * (or rule's) cgroup with no window at all (the `mullvad-exclude` approach).
 *
 * Node cannot execve, so awg moves ITSELF first (its pid into `cgroup.procs`: the whole
 * thread group moves) and only then spawns the command, which inherits the cgroup at fork:
 * every socket the command ever creates is matched by `socket cgroupv2` (a socket's cgroup is
 * fixed at creation, LINUX.md §4). stdio is inherited; the exit status is passed on (a
 * command killed by a signal kills awg with the same signal). SIGTERM, SIGHUP, SIGUSR2 are
 * forwarded; SIGINT and SIGQUIT only when stdin is not a terminal (a terminal already sends
 * them to the whole foreground process group, command included).
 */
import { spawn } from 'node:child_process';
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

export interface ExecOptions {
  tunnel?: string;
  direct?: boolean;
  rule?: string;
  stateDir?: string;
}

const FORWARD: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR2', 'SIGINT', 'SIGQUIT'];

function choiceOf(o: ExecOptions): ExecChoice {
  const n = [o.tunnel !== undefined, o.direct === true, o.rule !== undefined].filter(Boolean).length;
  if (n !== 1) throw new AwgError('invalid-config', 'give exactly one of --tunnel NAME, --direct or --rule NAME');
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
    if (code === 'ENOENT') throw new AwgError('driver', `cgroup ${path} does not exist (run awg apply)`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new AwgError('permission', `cannot move into ${procs}: ${code} (awg exec needs root, or write access to that file and to the common ancestor cgroup)`, { cause: e });
    throw new AwgError('driver', `cannot move into ${procs}: ${(e as Error).message}`, { cause: e });
  }
  const now = relativeCgroup(parseCgroupV2(readFileSync('/proc/self/cgroup', 'utf8')) ?? '', mount.root);
  if (now !== path) throw new AwgError('driver', `after writing ${procs} this process is in ${now ?? 'an unknown cgroup'}, not ${path}`);
}

export async function execCommand(io: Io, cmd: string[], o: ExecOptions): Promise<number> {
  let path: string;
  try {
    if (cmd.length === 0) throw new AwgError('invalid-config', 'no command given: awg exec --tunnel NAME -- COMMAND [ARGS…]');
    const state = new FileStateStore(stateDirFrom(o.stateDir), { onCorrupt: (c) => io.err(`warning: ${describeCorrupt(c)}\n`) });
    path = resolveExecCgroup(new AppliedStore(state).load(), choiceOf(o));
    placeSelf(path);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
  return new Promise<number>((resolve) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit' });
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const sig of FORWARD) {
      const h = () => {
        if ((sig === 'SIGINT' || sig === 'SIGQUIT') && process.stdin.isTTY) return;
        child.kill(sig);
      };
      handlers.set(sig, h);
      process.on(sig, h);
    }
    const done = (code: number) => {
      for (const [sig, h] of handlers) process.off(sig, h);
      resolve(code);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      io.err(`awg exec: ${cmd[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
      done(e.code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
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
