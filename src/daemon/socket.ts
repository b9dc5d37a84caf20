/** Where the daemon's API listens, and whether something answers there. */
import { statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { defaultPaths } from '../util/paths.js';

/** /run/awg/awg.sock (macOS: /var/run/awg/awg.sock; util/paths.ts) */
export const DEFAULT_SOCKET = defaultPaths().socket;

export interface SocketProbe {
  ok: boolean;
  code?: string;
  /** the pid of the process that listens there, when `listener` was given and could tell */
  pid?: number;
}

/**
 * Whether something accepts connections on the Unix socket at `path`; `listener` reads the
 * listening process's pid from the connected socket (Linux: SO_PEERCRED, daemon/client.ts).
 */
export function socketAnswers(
  path: string,
  timeoutMs = 1000,
  listener?: (s: Socket) => number | undefined | Promise<number | undefined>,
): Promise<SocketProbe> {
  return new Promise((resolve) => {
    const s = connect(path);
    let settled = false;
    let connected = false;
    const done = (r: SocketProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      s.destroy();
      resolve(r);
    };
    // A loop stalled past the timeout (GC, a busy CPU) runs timers before it reports the
    // connect that completed meanwhile: decide in the check phase, after pending I/O.
    const t = setTimeout(
      () => setImmediate(() => settled || connected || done({ ok: false, code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    s.once('connect', () => {
      if (!listener) return done({ ok: true });
      // connected: the listener's answer is awaited, the probe's timeout is over
      connected = true;
      void Promise.resolve(listener(s)).then(
        (pid) => done(pid === undefined ? { ok: true } : { ok: true, pid }),
        () => done({ ok: true }),
      );
    });
    s.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, code: e.code ?? 'EIO' }));
  });
}

/** the socket the CLI talks to: `--socket`, else $AWG_SOCKET, else /run/awg/awg.sock */
export function socketFrom(opt: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return opt || env.AWG_SOCKET || DEFAULT_SOCKET;
}

/**
 * Whether process `pid` runs in another network namespace than the calling thread: its
 * /proc/PID/ns/net is another namespace file (device and inode) than ours. Undefined when
 * /proc does not say: the process is gone, is not in our pid namespace, or we may not look
 * (another user's process, without CAP_SYS_PTRACE).
 */
export function otherNetns(pid: number, proc = '/proc'): boolean | undefined {
  try {
    const theirs = statSync(`${proc}/${pid}/ns/net`);
    const ours = statSync(`${proc}/thread-self/ns/net`);
    return theirs.dev !== ours.dev || theirs.ino !== ours.ino;
  } catch {
    return undefined;
  }
}
