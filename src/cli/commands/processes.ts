/**
 * `awg processes [--json] [--all]`: running processes with the rule that routes them, its
 * target and the effective route now (procs/list.ts: on Linux the rule whose cgroup holds
 * them, read from /proc; on macOS the rule their executable matches, applied per connection
 * by the flow router, read through libproc). Direct mode (no daemon): the rules come from the
 * config file of the last apply record, "tunnel up" from the link state (Platform.upLinks:
 * `awg-<name>` up with carrier on Linux, its utun up on macOS, i.e. an engine holds it);
 * proxy tunnels count as up while their engine resource is applied.
 *
 * Traffic: the kernel counts per socket cgroup, not per process, so each process shows its
 * rule cgroup's totals (`ruleTraffic`, the same numbers for every process of that rule; the
 * firewall counters of `awg status`). No per-pid numbers are made up.
 */
import { AwgError, toAwgError } from '../../errors.js';
import { loadConfigFile } from '../../config/load.js';
import { isWgLike, linkName } from '../../config/schema.js';
import type { ListedProcess } from '../../procs/placer.js';
import { processLister, type ProcessLister } from '../../procs/list.js';
import { loadPlatform, type Platform } from '../../resources/registry.js';
import { describeCorrupt, FileStateStore } from '../../util/state.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { printError, type Io } from '../output.js';
import { viaDaemon } from '../via-daemon.js';
import type { ProcessInfo, RuleCounter } from '../../daemon/core.js';
import { readDirectTraffic } from '../../daemon/traffic.js';
import { ProcessExec, type Exec } from '../../util/exec.js';
import { silentReporter } from '../../util/reporter.js';
import { humanBytes } from '../foreground.js';
import { safeLine } from '../../util/sanitize.js';
import { formatRate } from '../../config/rate.js';

export interface ProcessesOptions {
  json?: boolean;
  all?: boolean;
  stateDir?: string;
  socket?: string;
  direct?: boolean;
  // ---- injection for tests
  /** this host's platform unless given */
  platform?: Platform;
  /** the platform's process table unless given (procs/list.ts) */
  processes?: ProcessLister;
  /** runs the link-state reads (macOS: ifconfig) */
  exec?: Pick<Exec, 'read'>;
}

export async function listProcessesDirect(o: ProcessesOptions): Promise<ListedProcess[]> {
  const corrupt: string[] = [];
  const state = new FileStateStore(stateDirFrom(o.stateDir), {
    onCorrupt: (c) => corrupt.push(describeCorrupt(c)),
  });
  const last = new AppliedStore(state).load();
  if (!last)
    throw new AwgError(
      'invalid-config',
      `awg is not applied: ${corrupt.length ? corrupt.join('; ') : 'there is no apply record'} (run \`awg apply -f CONFIG\` first, or pass the same --state-dir)`,
    );
  // the host the last apply selected overlays for (a daemon's --host), not this machine's name
  const loaded = await loadConfigFile(
    last.configFile,
    last.selection ? { selection: last.selection } : {},
  );
  if (!loaded.config)
    throw new AwgError(
      'invalid-config',
      `cannot load ${last.configFile}, the config of the last apply`,
      { issues: loaded.issues },
    );
  const config = loaded.config;
  const platform = o.platform ?? (await loadPlatform());
  const lister = o.processes ?? (await processLister(platform.perApp));
  const links = await platform.upLinks({ state, exec: o.exec ?? new ProcessExec(silentReporter) });
  const tunnelUp = (name: string) => {
    const t = config.tunnels[name];
    if (!t) return false;
    return isWgLike(t)
      ? links.has(linkName(name))
      : last.resources.some((r) => r.kind === 'engine' && r.id === `engine/${name}`);
  };
  return lister.list(config, last.claims.cgroupRoot, {
    tunnelUp,
    ...(o.all !== undefined ? { all: o.all } : {}),
  });
}

type RuleTraffic = Pick<
  RuleCounter,
  'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes' | 'connections'
>;

/** the rule cgroups' counters in direct mode: our nft table of the last apply (none where the platform has no nft counters) */
async function directRuleTraffic(o: ProcessesOptions): Promise<Map<string, RuleTraffic>> {
  if ((o.platform ?? (await loadPlatform())).trafficCounters !== 'nft') return new Map();
  const last = new AppliedStore(new FileStateStore(stateDirFrom(o.stateDir))).load();
  if (!last) return new Map();
  const t = await readDirectTraffic(new ProcessExec(silentReporter), last.claims.nftTable, []);
  return new Map(t.rules.map((r) => [r.name, r]));
}

export async function processesCommand(io: Io, o: ProcessesOptions): Promise<number> {
  // the daemon knows tunnel health (fallbacks) and runs the watcher: ask it when it answers;
  // it lists the processes of the rules only, so --all reads the host directly
  const via = await viaDaemon(io, o.all ? { ...o, direct: true } : o, async (c) => {
    const list = await c.listProcesses();
    const rules = await c.status().then(
      (s) => s.rules ?? [],
      () => [],
    );
    return print(io, o, list, new Map(rules.map((r) => [r.name, r])));
  });
  if ('code' in via) return via.code;
  try {
    const list = await listProcessesDirect(o);
    return print(
      io,
      o,
      list,
      await directRuleTraffic(o).catch(() => new Map<string, RuleTraffic>()),
    );
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

export function print(
  io: Io,
  o: ProcessesOptions,
  list: ProcessInfo[],
  traffic: ReadonlyMap<string, RuleTraffic> = new Map(),
): number {
  const of = (p: ProcessInfo): RuleTraffic | undefined => {
    const t = p.rule ? traffic.get(p.rule) : undefined;
    return t
      ? {
          txPackets: t.txPackets,
          txBytes: t.txBytes,
          rxPackets: t.rxPackets,
          rxBytes: t.rxBytes,
          ...(t.connections !== undefined ? { connections: t.connections } : {}),
        }
      : undefined;
  };
  if (o.json) {
    // ruleTraffic: the rule cgroup's totals (shared by its processes), not this process's own
    io.out(
      JSON.stringify(
        list.map((p) => {
          const t = of(p);
          return t ? { ...p, ruleTraffic: t } : p;
        }),
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  // process names and paths are anyone's choice (a binary named with escape sequences): safeLine
  const cell = (t: RuleTraffic | undefined) =>
    t ? `${humanBytes(t.txBytes)}/${humanBytes(t.rxBytes)}` : '-';
  // a runtime limit (awg limit): its rates, and whose it is when inherited
  const limited = list.some((p) => p.limit);
  const limitCell = (p: ProcessInfo) =>
    p.limit
      ? `${[p.limit.upload, p.limit.download].map((r) => (r === undefined ? '-' : formatRate(r))).join('/')}${p.limit.pid !== p.pid ? ` (of ${p.limit.pid})` : ''}`
      : '-';
  const rows = [
    [
      'PID',
      'NAME',
      'RULE',
      'TARGET',
      'ROUTE',
      'RULE TX/RX',
      ...(limited ? ['LIMIT UP/DOWN'] : []),
      'EXECUTABLE',
    ],
    ...list.map((p) =>
      [
        String(p.pid),
        p.name,
        (p.rule ?? '-') + (p.pending ? ` (matches ${p.pending})` : ''),
        p.target ?? '-',
        p.route,
        cell(of(p)),
        ...(limited ? [limitCell(p)] : []),
        p.path,
      ].map((c) => safeLine(c)),
    ),
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n');
  const counted = list.map(of).filter((t) => t !== undefined);
  if (counted.some((t) => t.connections === undefined))
    io.out(
      "RULE TX/RX: bytes sent/received by the rule's cgroup, all its processes together (the kernel counts per cgroup, not per process)\n",
    );
  else if (counted.length)
    io.out(
      "RULE TX/RX: payload bytes sent/received by the rule's connections through the flow router, all its processes together\n",
    );
  return 0;
}
