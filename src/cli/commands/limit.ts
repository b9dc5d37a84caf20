/**
 * `awg limit PID --upload R --download R` / `awg limit PID --clear` / `awg limit --list`:
 * shape a running process (and the children it starts from then on) beside the config, through
 * the daemon only: the limit lasts until the process and its children exit, so it needs a
 * process that outlives this command (daemon/limit-book.ts holds it). Rates are written as in
 * the config's `limit:` (config/rate.ts). Exit 0 done (or already so).
 */
import { AwgError, toAwgError } from '../../errors.js';
import { formatRate, parseRate } from '../../config/rate.js';
import { daemonFor, needsDaemon, type DaemonChoice } from '../../daemon/client.js';
import type { LimitInfo, LimitRequest } from '../../daemon/core.js';
import { safeLine } from '../../util/sanitize.js';
import { limitRates } from '../foreground.js';
import { printError, type Io } from '../output.js';

export interface LimitOptions extends Omit<DaemonChoice, 'direct'> {
  upload?: string;
  download?: string;
  clear?: boolean;
  list?: boolean;
  json?: boolean;
}

function rate(flag: string, s: string): number {
  const r = parseRate(s);
  if (!r.ok) throw new AwgError('invalid-config', `--${flag}: ${r.error}`);
  return r.bits;
}

/** The request the arguments ask for, or undefined for --list; invalid combinations throw. */
export function limitRequest(
  pidArg: string | undefined,
  o: LimitOptions,
): LimitRequest | undefined {
  const rates = o.upload !== undefined || o.download !== undefined;
  if (o.list) {
    if (pidArg !== undefined || rates || o.clear)
      throw new AwgError('invalid-config', '--list takes no pid, rates or --clear');
    return undefined;
  }
  if (pidArg === undefined)
    throw new AwgError(
      'invalid-config',
      'name a process: awg limit PID --download 1Mbit (or --list)',
    );
  if (!/^[1-9]\d{0,9}$/.test(pidArg) || Number(pidArg) > 0x3fffffff)
    throw new AwgError('invalid-config', `${pidArg} is not a process id`);
  const pid = Number(pidArg);
  if (o.clear) {
    if (rates) throw new AwgError('invalid-config', '--clear takes no --upload or --download');
    return { pid, clear: true };
  }
  if (!rates)
    throw new AwgError(
      'invalid-config',
      'give --upload, --download (or both), e.g. --download 1Mbit; or --clear',
    );
  return {
    pid,
    ...(o.upload !== undefined ? { upload: rate('upload', o.upload) } : {}),
    ...(o.download !== undefined ? { download: rate('download', o.download) } : {}),
  };
}

/** the limits as a table (names and paths are anyone's choice: safeLine) */
export function renderLimits(ls: readonly LimitInfo[]): string {
  if (!ls.length) return 'no runtime limits\n';
  const r = (v: number | undefined) => (v === undefined ? '-' : formatRate(v));
  const rows = [
    ['PID', 'NAME', 'UPLOAD', 'DOWNLOAD', 'PROCESSES', 'SINCE', 'CGROUP'],
    ...ls.map((l) =>
      [
        String(l.pid),
        l.name,
        r(l.upload),
        r(l.download),
        String(l.processes),
        l.since,
        l.group,
      ].map((c) => safeLine(c)),
    ),
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  return rows
    .map((x) => x.map((c, i) => (i === x.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n')
    .join('');
}

export async function limitCommand(
  io: Io,
  pidArg: string | undefined,
  o: LimitOptions,
): Promise<number> {
  let close: (() => void) | undefined;
  try {
    const req = limitRequest(pidArg, o);
    const d = await daemonFor({ ...o, anyNetns: true });
    if (!d.client)
      throw needsDaemon(
        'awg limit (the daemon holds a limit until the process exits: it must outlive this command)',
        d.reason,
      );
    const c = d.client;
    close = () => c.close();
    if (!req) {
      const ls = await c.listLimits();
      io.out(o.json ? JSON.stringify(ls, null, 2) + '\n' : renderLimits(ls));
      return 0;
    }
    const r = await c.limit(req);
    if (o.json) io.out(JSON.stringify(r, null, 2) + '\n');
    else if (req.clear) io.out(`limit of process ${req.pid} cleared\n`);
    else if (r.limit)
      io.out(
        safeLine(
          `process ${r.limit.pid} (${r.limit.name}) ${r.changed ? 'limited' : 'already limited'}: ${limitRates(r.limit)}; cgroup ${r.limit.group}, the children it starts from now on included`,
        ) + '\n',
      );
    return 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  } finally {
    close?.();
  }
}
