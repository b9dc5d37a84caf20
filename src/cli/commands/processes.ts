/**
 * `awg processes [--json] [--all]`: running processes with the rule whose cgroup holds them,
 * its target and the effective route now. Direct mode (no daemon): the rules come from the
 * config file of the last apply record, "tunnel up" from the TUN link state in this network
 * namespace (`awg-<name>` up with carrier, i.e. an engine holds it); proxy tunnels count as
 * up while their engine resource is applied.
 */
import { readFileSync } from 'node:fs';
import { AwgError, toAwgError } from '../../errors.js';
import { loadConfigFile } from '../../config/load.js';
import { isWgLike, linkName } from '../../config/schema.js';
import { compileRules } from '../../model/match.js';
import { dumpLinks, NetlinkSocket } from '../../native/netlink.js';
import { parseCgroup2Mount } from '../../resources/cgroup/parse.js';
import { describeProcess, type ListedProcess } from '../../procs/placer.js';
import { scanProcesses } from '../../procs/scan.js';
import { describeCorrupt, FileStateStore } from '../../util/state.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { printError, type Io } from '../output.js';
import { viaDaemon } from '../via-daemon.js';
import type { ProcessInfo } from '../../daemon/core.js';
import { safeLine } from '../../util/sanitize.js';

export interface ProcessesOptions {
  json?: boolean;
  all?: boolean;
  stateDir?: string;
  socket?: string;
  direct?: boolean;
}

const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;

function upLinks(): Set<string> {
  const sock = NetlinkSocket.open();
  try {
    return new Set(
      dumpLinks(sock)
        .filter((l) => (l.flags & IFF_UP) !== 0 && (l.flags & IFF_LOWER_UP) !== 0)
        .map((l) => l.ifname ?? ''),
    );
  } finally {
    sock.close();
  }
}

export async function listProcessesDirect(o: ProcessesOptions): Promise<ListedProcess[]> {
  const corrupt: string[] = [];
  const last = new AppliedStore(new FileStateStore(stateDirFrom(o.stateDir), { onCorrupt: (c) => corrupt.push(describeCorrupt(c)) })).load();
  if (!last) throw new AwgError('invalid-config', `awg is not applied: ${corrupt.length ? corrupt.join('; ') : 'there is no apply record'} (run \`awg apply -f CONFIG\` first, or pass the same --state-dir)`);
  const loaded = await loadConfigFile(last.configFile);
  if (!loaded.config) throw new AwgError('invalid-config', `cannot load ${last.configFile}, the config of the last apply`, { issues: loaded.issues });
  const config = loaded.config;
  const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!mount) throw new AwgError('unsupported', 'no cgroup v2 hierarchy is mounted');
  const links = upLinks();
  const tunnelUp = (name: string) => {
    const t = config.tunnels[name];
    if (!t) return false;
    return isWgLike(t) ? links.has(linkName(name)) : last.resources.some((r) => r.kind === 'engine' && r.id === `engine/${name}`);
  };
  const matcher = compileRules(config.rules);
  return scanProcesses().flatMap((p) => describeProcess(p, matcher, last.claims.cgroupRoot, mount.root, { tunnelUp, defaultRoute: config.default, all: o.all }));
}

export async function processesCommand(io: Io, o: ProcessesOptions): Promise<number> {
  // the daemon knows tunnel health (fallbacks) and runs the watcher: ask it when it answers
  const via = await viaDaemon(io, o, async (c) => print(io, o, await c.listProcesses()));
  if ('code' in via) return via.code;
  try {
    return print(io, o, await listProcessesDirect(o));
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

function print(io: Io, o: ProcessesOptions, list: ProcessInfo[]): number {
  if (o.json) {
    io.out(JSON.stringify(list, null, 2) + '\n');
    return 0;
  }
  // process names and paths are anyone's choice (a binary named with escape sequences): safeLine
  const rows = [['PID', 'NAME', 'RULE', 'TARGET', 'ROUTE', 'EXECUTABLE'], ...list.map((p) => [String(p.pid), p.name, (p.rule ?? '-') + (p.pending ? ` (matches ${p.pending})` : ''), p.target ?? '-', p.route, p.path].map((c) => safeLine(c)))];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n');
  return 0;
}
