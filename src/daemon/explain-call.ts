/**
 * Explain through the daemon (`awg explain`, DaemonCore.explain): the rules walked for a
 * connection of a running process with the config the daemon runs, tunnel health, the DNS
 * learner's book and the cgroup mount of this namespace (procs/explain.ts does the walk).
 */
import { readFileSync } from 'node:fs';
import { AwgError } from '../errors.js';
import type { ExplainDocument } from '../model/explain-document.js';
import type { Prepared } from '../pipeline/prepare.js';
import { destinationsWithSources, explainPid, type ExplainRequest } from '../procs/explain.js';
import { tunnelUpOf } from '../model/match.js';
import { parseCgroup2Mount } from '../resources/cgroup/parse.js';
import type { DaemonOptions } from './options.js';

export function explainRunning(
  req: ExplainRequest,
  o: {
    prepared: Prepared | undefined;
    book: DaemonOptions['learned'];
    down: ReadonlySet<string>;
    /** rules held on their fallback although their tunnel is up (sticky.ts) */
    held?: ReadonlySet<string>;
    opts: Pick<DaemonOptions, 'mountinfo' | 'explainProc'>;
  },
): Promise<ExplainDocument> {
  const p = o.prepared;
  if (!p) throw new AwgError('invalid-config', 'the daemon runs no config yet: nothing to explain');
  const { book, down } = o;
  let mountRoot = '/';
  try {
    mountRoot =
      parseCgroup2Mount(
        (o.opts.mountinfo ?? (() => readFileSync('/proc/self/mountinfo', 'utf8')))(),
      )?.root ?? '/';
  } catch {
    /* no mountinfo: nothing sits in our cgroups */
  }
  return explainPid(req, {
    source: 'daemon',
    config: p.config,
    destinations: destinationsWithSources(p.config, p.destinations ?? new Map(), p.file),
    tunnelUp: (t, rule) => p.config.tunnels[t] !== undefined && tunnelUpOf(down, o.held)(t, rule),
    cgroupRoot: p.claims.cgroupRoot,
    mountRoot,
    ...(book
      ? {
          learned: (a: string) => book.lookup(a),
          ...(book.addressesOf ? { learnedAddrs: (n: string) => book.addressesOf!(n) } : {}),
          now: book.now(),
        }
      : {}),
    ...(o.opts.explainProc ? { readSubject: o.opts.explainProc } : {}),
  });
}
