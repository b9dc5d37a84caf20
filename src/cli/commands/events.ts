/**
 * `awg events [--json]`: follow the daemon's event stream (Watch): one line per event, as
 * `awg up` prints them (`<time> <text>`), or the event as a JSON line. Runs until SIGINT or
 * SIGTERM (exit 0) or until the daemon goes away (exit 6); needs the daemon.
 */
import { toAwgError } from '../../errors.js';
import { daemonFor, needsDaemon, type DaemonChoice } from '../../daemon/client.js';
import { formatEvent } from '../foreground.js';
import { printError, type Io } from '../output.js';

export interface EventsOptions extends Omit<DaemonChoice, 'direct'> {
  json?: boolean;
}

export async function eventsCommand(
  io: Io,
  o: EventsOptions,
  deps: { until?: Promise<unknown> } = {},
): Promise<number> {
  let unsub: (() => void) | undefined;
  let close: (() => void) | undefined;
  try {
    const d = await daemonFor(o);
    if (!d.client) throw needsDaemon('awg events', d.reason);
    const c = d.client;
    close = () => c.close();
    let endWatch!: (err: unknown) => void;
    const ended = new Promise<{ err: unknown }>(
      (resolve) => (endWatch = (err) => resolve({ err })),
    );
    unsub = await c.watch(
      (e) => io.out(o.json ? JSON.stringify(e) + '\n' : `${e.at} ${formatEvent(e)}\n`),
      (err) => endWatch(err ?? new Error('the daemon closed the event stream')),
    );
    const until =
      deps.until ??
      new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    const r = await Promise.race([until.then(() => ({ err: undefined as unknown })), ended]);
    if (r.err) throw toAwgError(r.err, 'driver');
    return 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  } finally {
    unsub?.();
    close?.();
  }
}
