/**
 * The one client-mode prelude of apply/diff/status/down: use the daemon when its socket
 * answers (and always close the connection), act directly otherwise.
 */
import { toAwgError, type AwgError } from '../errors.js';
import { daemonFor, type DaemonChoice, type DaemonClient } from '../daemon/client.js';
import { printError, type Io } from './output.js';

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
  if (!d.client) return { reason: d.reason };
  try {
    return { code: await run(d.client) };
  } finally {
    d.client.close();
  }
}
