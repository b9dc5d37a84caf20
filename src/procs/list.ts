/**
 * ListProcesses (the daemon's API and `awg processes --direct`): the processes awg routes,
 * read the way the platform routes them (Platform.perApp, resources/platform/platform.ts):
 * - 'cgroup' (Linux): /proc (scan.ts) and the rule cgroups processes sit in (placer.ts
 *   describeProcess); without a cgroup v2 mount nothing sits in ours, and processes are
 *   listed by what their executable matches.
 * - 'flow-router' (macOS): libproc (darwin.ts; the koffi bindings load on the first list).
 * - 'none': an OS awg does not support: AwgError('unsupported').
 */
import { readFileSync } from 'node:fs';
import { AwgError } from '../errors.js';
import { isWgLike, type Config } from '../config/schema.js';
import { compileRules } from '../model/match.js';
import { parseCgroup2Mount } from '../resources/cgroup/parse.js';
import { linuxIdentityLookup } from './identity.js';
import { describeProcess, type ListedProcess, type ListOptions } from './placer.js';
import { linuxProcFs, scanProcesses, type ProcFs } from './scan.js';
import { listDarwinProcesses, type ProcTable } from './darwin.js';

export interface ProcessLister {
  /** every process a rule matches (all: every process), with its route now */
  list(
    c: Pick<Config, 'rules' | 'default' | 'tunnels'>,
    cgroupRoot: string,
    o: Omit<ListOptions, 'defaultRoute'>,
  ): ListedProcess[];
}

/** how a platform meets path rules (Platform.perApp) */
export type PerApp = 'cgroup' | 'flow-router' | 'none';

export function linuxProcessLister(
  procfs: ProcFs = linuxProcFs(),
  mountinfo: () => string = () => readFileSync('/proc/self/mountinfo', 'utf8'),
): ProcessLister {
  return {
    list(c, cgroupRoot, o) {
      let root = '/';
      try {
        root = parseCgroup2Mount(mountinfo())?.root ?? '/';
      } catch {
        /* no /proc/self/mountinfo: no cgroup is ours to read */
      }
      const matcher = compileRules(c.rules, linuxIdentityLookup());
      const { uid, flatpak } = matcher.needs;
      return scanProcesses(procfs).flatMap((p) => {
        const u = uid ? procfs.uid?.(p.pid) : undefined;
        const f = flatpak ? procfs.flatpak?.(p.pid) : undefined;
        const entry = {
          ...p,
          ...(u !== undefined ? { uid: u } : {}),
          ...(f !== undefined ? { flatpak: f } : {}),
        };
        return describeProcess(entry, matcher, cgroupRoot, root, { ...o, defaultRoute: c.default });
      });
    },
  };
}

export function darwinProcessLister(table: ProcTable): ProcessLister {
  return {
    list: (c, _cgroupRoot, o) =>
      listDarwinProcesses(table, c.rules, {
        ...o,
        defaultRoute: c.default,
        routed: (name) => {
          const t = c.tunnels[name];
          return t !== undefined && isWgLike(t);
        },
      }),
  };
}

/** The lister of a platform (`perApp`); macOS's loads the libproc bindings, lazily. */
export async function processLister(perApp: PerApp): Promise<ProcessLister> {
  switch (perApp) {
    case 'cgroup':
      return linuxProcessLister();
    case 'flow-router':
      return darwinProcessLister((await import('../native/darwin/libproc.js')).libprocTable());
    case 'none':
      return {
        list: () => {
          throw new AwgError(
            'unsupported',
            'listing processes is not supported on this OS (Linux and macOS only)',
          );
        },
      };
  }
}
