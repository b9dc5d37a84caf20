/**
 * The one client-mode prelude of apply/diff/status/down: use the daemon when its socket
 * answers (and always close the connection), act directly otherwise, and also when the
 * daemon that answers runs in another network namespace (it manages that one, not ours).
 */
import { toAwgError, type AwgError } from '../errors.js';
import { daemonFor, type DaemonChoice, type DaemonClient } from '../daemon/client.js';
import { messageText, printError, type Io } from './output.js';

export type ViaDaemon = { code: number } | { reason: string };

export async function viaDaemon(
  io: Io,
  o: DaemonChoice,
  run: (client: DaemonClient) => Promise<number>,
  errorExit: (e: AwgError) => number = (e) => e.exitCode,
): Promise<ViaDaemon> {
  let d: Awaited<ReturnType<typeof daemonFor>>;
  try {
    d = await daemonFor(o);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return { code: errorExit(err) };
  }
  if (!d.client) {
    // said on stderr: the user may have meant that daemon, and stdout may be a document
    if (d.elsewhere)
      io.err(
        `note: ${messageText(d.reason)}: this command acts on this network namespace directly (--direct says so; --socket names another daemon)\n`,
      );
    return { reason: d.reason };
  }
  try {
    return { code: await run(d.client) };
  } finally {
    d.client.close();
  }
}
