/**
 * `awg events [--json]`: follow the daemon's event stream (Watch): one line per event, as
 * `awg up` prints them (`<time> <text>`), or the event as a JSON line. When the daemon goes
 * away (stopped, restarted, killed) it says so (`service unavailable`, in --json a
 * `{"type":"service",…}` line), reconnects with backoff and resumes after the last event it
 * printed (the daemon replays what it still holds, or sends a `gap`); `--no-reconnect` ends
 * there instead (exit 6). Runs until SIGINT or SIGTERM (exit 0); needs the daemon (exit 3
 * when none answers at the start, 4 when its socket refuses this user).
 */
import { toAwgError } from '../../errors.js';
import { daemonFor, needsDaemon, type DaemonChoice } from '../../daemon/client.js';
import { formatEvent } from '../foreground.js';
import { printError, type Io } from '../output.js';
import { follow, serviceText, type ReconnectDeps, type ServiceChange } from '../reconnect.js';

export interface EventsOptions extends Omit<DaemonChoice, 'direct'> {
  json?: boolean | undefined;
  /** false (`--no-reconnect`): end when the daemon goes away */
  reconnect?: boolean | undefined;
}

export async function eventsCommand(
  io: Io,
  o: EventsOptions,
  deps: { until?: Promise<unknown>; reconnect?: ReconnectDeps } = {},
): Promise<number> {
  try {
    const d = await daemonFor({ ...o, anyNetns: true });
    if (!d.client) throw needsDaemon('awg events', d.reason);
    /** the id of the last event printed ('' until one came, or from a daemon without ids) */
    let lastId = '';
    const service = (c: ServiceChange) => {
      const s: ServiceChange =
        c.state === 'available'
          ? {
              ...c,
              reason: lastId
                ? `resuming after event ${lastId}`
                : 'resuming from now: events while it was away may be missing',
            }
          : c;
      io.out(o.json ? JSON.stringify(s) + '\n' : `${s.at} ${serviceText(s)}\n`);
    };
    const err = await follow({
      client: d.client,
      start: (c, end) =>
        c.watch(
          (e, id) => {
            if (id) lastId = id;
            io.out(o.json ? JSON.stringify(e) + '\n' : `${e.at} ${formatEvent(e)}\n`);
          },
          end,
          lastId ? { after: lastId } : {},
        ),
      onService: service,
      until:
        deps.until ??
        new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        }),
      reconnect: o.reconnect !== false,
      closed: 'the daemon closed the event stream',
      deps: deps.reconnect,
    });
    if (err) throw err;
    return 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
