/** Where the daemon's API listens, and whether something answers there. */
import { connect } from 'node:net';
import { defaultPaths } from '../util/paths.js';

/** /run/awg/awg.sock (macOS: /var/run/awg/awg.sock; util/paths.ts) */
export const DEFAULT_SOCKET = defaultPaths().socket;

/** Whether something accepts connections on the Unix socket at `path`. */
export function socketAnswers(
  path: string,
  timeoutMs = 1000,
): Promise<{ ok: boolean; code?: string }> {
  return new Promise((resolve) => {
    const s = connect(path);
    let settled = false;
    const done = (r: { ok: boolean; code?: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      s.destroy();
      resolve(r);
    };
    // A loop stalled past the timeout (GC, a busy CPU) runs timers before it reports the
    // connect that completed meanwhile: decide in the check phase, after pending I/O.
    const t = setTimeout(
      () => setImmediate(() => settled || done({ ok: false, code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    s.once('connect', () => done({ ok: true }));
    s.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, code: e.code ?? 'EIO' }));
  });
}

/** the socket the CLI talks to: `--socket`, else $AWG_SOCKET, else /run/awg/awg.sock */
export function socketFrom(opt: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return opt || env.AWG_SOCKET || DEFAULT_SOCKET;
}
