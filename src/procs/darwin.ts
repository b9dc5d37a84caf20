/**
 * ListProcesses on macOS: every process libproc shows (proc_listallpids, proc_pidpath,
 * proc_pidinfo PROC_PIDT_SHORTBSDINFO; native/darwin/libproc.ts `libprocTable`), with the
 * route the flow router gives its TCP now. macOS has no cgroups, so nothing "sits" in a rule:
 * the rule is the one the executable matches, decided per connection by the same matcher
 * (model/match.ts failoverChain → effectiveRoute; resources/flow/flow-router.ts), and
 * `cgroup` is ''. Pure apart from the table, which tests feed from a captured `ps -ef`.
 *
 * Processes of the router's uid (root, the daemon's: PF's route-to rule skips `user 0`,
 * platform/darwin/pf-flow.ts) are not routed per app: their TCP follows the routing table.
 * A rule that matches one is shown as `pending` (matched, not applied), the way Linux shows a
 * matching process that is not in its rule's cgroup, and its route is the routing table's:
 * the default tunnel while it is up (its 0/1 + 128/1), else direct. Unmatched processes
 * (`all`) get the default route through the router when one runs, else the routing table's.
 * Every read races with the process exiting: a vanished process is left out.
 *
 * `awg exec` (`execOf`, the daemon's registrations): a user process that is or descends from a
 * registered pid is listed with the route the router gives it (model/match.ts execRoute), as
 * Linux lists a process in an exec cgroup: `exec:<tunnel>` / `exec:direct` and its target, or
 * the rule of `--rule NAME`; one whose own executable a rule matches under `--rule` is listed
 * by the rules, as the router judges it.
 */
import {
  defaultRoute,
  effectiveRoute,
  execRoute,
  exeSubject,
  compileRules,
} from '../model/match.js';
import type { Config } from '../config/schema.js';
import type { ListedProcess, ListOptions } from './placer.js';

/** libproc's answers about processes (or a fake of them) */
export interface ProcTable {
  pids(): number[];
  /** proc_pidpath; undefined when gone or not ours to see */
  path(pid: number): string | undefined;
  /** proc_pidinfo PROC_PIDT_SHORTBSDINFO; undefined when gone or not ours to see */
  info(pid: number): { ppid: number; comm: string; uid: number } | undefined;
}

/** the uid the flow router runs as (the daemon under launchd): PF never redirects its sockets */
export const ROUTER_UID = 0;

export interface DarwinListOptions extends ListOptions {
  /** is `name` a WireGuard/AmneziaWG tunnel (routes on a utun), not a proxy tunnel? */
  routed?: (name: string) => boolean;
  routerUid?: number;
}

export function listDarwinProcesses(
  table: ProcTable,
  rules: Config['rules'],
  o: DarwinListOptions,
): ListedProcess[] {
  const matcher = compileRules(rules);
  const def = o.defaultRoute ?? 'direct';
  const routed = def === 'direct' || (o.routed?.(def) ?? true);
  // the routing table: the default tunnel's split routes while it is up, else the system default
  const viaTable = def !== 'direct' && routed && o.tunnelUp(def) ? def : 'direct';
  // the router runs with an enabled rule or a proxy default (resources/platform/darwin-flow.ts); it
  // sends unmatched apps the default route, blocked while that tunnel is down
  const router = rules.some((r) => r.enabled) || !routed;
  const unmatched = router ? defaultRoute(def, o.tunnelUp) : viaTable;
  const out: ListedProcess[] = [];
  const parents = new Map<number, number | undefined>();
  const parentOf = (pid: number) => {
    if (!parents.has(pid)) parents.set(pid, table.info(pid)?.ppid);
    return parents.get(pid);
  };
  for (const pid of [...table.pids()].sort((a, b) => a - b)) {
    const path = table.path(pid);
    const info = path === undefined ? undefined : table.info(pid);
    if (path === undefined || !info) continue;
    parents.set(pid, info.ppid);
    const exe = exeSubject(path);
    const base = { pid, ppid: info.ppid, name: info.comm, path: exe, cgroup: '' };
    const chain = matcher.failoverChain(exe);
    const first = chain[0];
    if (info.uid === (o.routerUid ?? ROUTER_UID)) {
      if (first || o.all)
        out.push({ ...base, route: viaTable, ...(first ? { pending: first.name } : {}) });
      continue;
    }
    const choice = o.execOf?.(pid, parentOf);
    const byExec = choice && execRoute(choice, exe, matcher, o.tunnelUp);
    if (choice && byExec) {
      const target = 'tunnel' in choice ? choice.tunnel : 'direct';
      out.push({
        ...base,
        ...(byExec.rule
          ? { rule: byExec.rule.name, target: byExec.rule.target }
          : { rule: `exec:${target}`, target }),
        route: byExec.route,
      });
      continue;
    }
    if (!first) {
      if (o.all) out.push({ ...base, route: unmatched });
      continue;
    }
    out.push({
      ...base,
      rule: first.name,
      target: first.target,
      route: effectiveRoute(chain, o.tunnelUp),
    });
  }
  return out;
}
