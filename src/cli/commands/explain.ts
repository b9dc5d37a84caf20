/**
 * `awg explain --pid N --to HOST:PORT [--udp] [-f config] [--direct] [--json]`: why one
 * connection of a running process takes the route it takes — the rules walked in the
 * firewall's order (model/explain.ts), each rule's program and destination parts with the
 * reason, and the decision. Through the daemon (its running config, tunnel health and the
 * addresses it learned from DNS answers) when it answers; directly otherwise, or with
 * `--direct` / `-f` (the config file given, else that of the last apply; "tunnel up" from the
 * link state as `awg processes` reads it; nothing learned).
 */
import { readFileSync } from 'node:fs';
import { AwgError, toAwgError } from '../../errors.js';
import { loadConfigFile } from '../../config/load.js';
import { isWgLike, linkName } from '../../config/schema.js';
import { CGROUP_ROOT } from '../../model/desired.js';
import type { ExplainDocument } from '../../model/explain-document.js';
import { destinationsWithSources, explainPid, parseTarget } from '../../procs/explain.js';
import { parseCgroup2Mount } from '../../resources/cgroup/parse.js';
import { loadPlatform, type Platform } from '../../resources/registry.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { FileStateStore } from '../../util/state.js';
import { ProcessExec } from '../../util/exec.js';
import { silentReporter } from '../../util/reporter.js';
import { safeLine } from '../../util/sanitize.js';
import { printError, type Io } from '../output.js';
import { viaDaemon } from '../via-daemon.js';

export interface ExplainOptions {
  pid: string;
  to: string;
  udp?: boolean;
  file?: string;
  json?: boolean;
  stateDir?: string;
  socket?: string;
  direct?: boolean;
  // ---- injection for tests
  platform?: Platform;
  resolve?: (host: string) => Promise<string[]>;
}

function request(o: ExplainOptions) {
  const pid = Number(o.pid);
  if (!/^\d+$/.test(o.pid) || pid < 1)
    throw new AwgError('invalid-config', `--pid ${o.pid}: a process id is a positive integer`);
  return { pid, ...parseTarget(o.to), proto: o.udp ? ('udp' as const) : ('tcp' as const) };
}

export async function explainDirect(o: ExplainOptions): Promise<ExplainDocument> {
  const req = request(o);
  const state = new FileStateStore(stateDirFrom(o.stateDir));
  const last = new AppliedStore(state).load();
  const file = o.file ?? last?.configFile;
  if (file === undefined)
    throw new AwgError(
      'invalid-config',
      'awg is not applied: give the config with -f, or run `awg apply -f CONFIG` first',
    );
  const loaded = await loadConfigFile(
    file,
    o.file === undefined && last?.selection ? { selection: last.selection } : {},
  );
  if (!loaded.config)
    throw new AwgError('invalid-config', `cannot load ${file}`, { issues: loaded.issues });
  const config = loaded.config;
  const platform = o.platform ?? (await loadPlatform());
  const links = await platform.upLinks({ state, exec: new ProcessExec(silentReporter) });
  const tunnelUp = (name: string) => {
    const t = config.tunnels[name];
    if (!t) return false;
    return isWgLike(t)
      ? links.has(linkName(name))
      : (last?.resources.some((r) => r.kind === 'engine' && r.id === `engine/${name}`) ?? false);
  };
  let mountRoot = '/';
  try {
    mountRoot = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'))?.root ?? '/';
  } catch {
    /* no mountinfo (not Linux): nothing sits in our cgroups */
  }
  return explainPid(req, {
    source: 'direct',
    config,
    destinations: destinationsWithSources(config, loaded.destinations ?? new Map(), file),
    tunnelUp,
    cgroupRoot: last?.claims.cgroupRoot ?? CGROUP_ROOT,
    mountRoot,
    ...(o.resolve ? { resolve: o.resolve } : {}),
  });
}

export async function explainCommand(io: Io, o: ExplainOptions): Promise<number> {
  try {
    const req = request(o);
    // -f names a config other than the daemon's: explain it directly
    const via = await viaDaemon(io, o.file !== undefined ? { ...o, direct: true } : o, async (c) =>
      print(io, o, await c.explain(req)),
    );
    if ('code' in via) return via.code;
    return print(io, o, await explainDirect(o));
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

const mark = (f: boolean | 'n/a') => (f === 'n/a' ? '·' : f ? '✓' : '✗');

export function formatExplanation(d: ExplainDocument): string {
  const out: string[] = [];
  const s = d.subject;
  out.push(
    `process ${d.pid}: ${s.exe ?? '(executable unreadable)'}` +
      (s.uid !== undefined ? ` uid ${s.uid}` : '') +
      (s.cgroup !== undefined ? ` cgroup ${s.cgroup}` : '') +
      (s.flatpak !== undefined ? ` flatpak ${s.flatpak}` : ''),
  );
  const t = d.destination;
  const host = t.addr.includes(':') ? `[${t.addr}]` : t.addr;
  out.push(
    `to ${host}:${t.port}/${t.proto}` +
      (t.resolvedBy === 'literal'
        ? ''
        : ` (${t.host} via ${t.resolvedBy === 'learned' ? "the daemon's learned addresses" : 'getaddrinfo'}${t.others?.length ? `; also ${t.others.join(', ')}` : ''})`),
  );
  d.steps.forEach((st, n) => {
    const head = `${n + 1}. ${st.index >= 0 ? `rules[${st.index}] ` : ''}${st.rule} → ${st.target}`;
    if (st.verdict === 'disabled') {
      out.push(`${head}: disabled`);
      return;
    }
    out.push(`${head}: ${st.verdict}${st.why ? ` (${st.why})` : ''}`);
    out.push(`   program     ${mark(st.program.fits)} ${st.program.why}`);
    out.push(`   destination ${mark(st.destination.fits)} ${st.destination.why}`);
  });
  const dec = d.decision;
  out.push(`route: ${dec.route}${dec.rule ? ` (rule ${dec.rule})` : ' (default)'} — ${dec.why}`);
  if (d.source === 'direct')
    out.push(
      '(read directly: tunnel health from the link state; addresses learned from DNS answers only the daemon knows)',
    );
  return out.map((l) => safeLine(l)).join('\n') + '\n';
}

function print(io: Io, o: ExplainOptions, d: ExplainDocument): number {
  io.out(o.json ? JSON.stringify(d, null, 2) + '\n' : formatExplanation(d));
  return 0;
}
