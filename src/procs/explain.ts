/**
 * `awg explain --pid N --to HOST:PORT`: read the process from /proc, resolve HOST, and walk
 * the rules (model/explain.ts). Shared by the CLI's direct mode and the daemon's Explain.
 *
 * HOST may be a name: the daemon's learned addresses for it come first (what awg's resolver
 * path gave the app), else the system resolver (getaddrinfo); the first address is walked and
 * the others are listed.
 */
import { lookup } from 'node:dns/promises';
import { readFileSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { AwgError } from '../errors.js';
import {
  parseDestinationList,
  parseInlineDestinations,
  type DestinationSet,
} from '../config/lists.js';
import { listRefLabel, normalListRef } from '../config/list-ref.js';
import type { Config } from '../config/schema.js';
import {
  explain,
  parseAddr,
  type ExplainPlacement,
  type LearnedFact,
  type RuleDestinations,
} from '../model/explain.js';
import type { ExplainDocument } from '../model/explain-document.js';
import { exeSubject, ruleName, type TunnelUp } from '../model/match.js';
import { classifyCgroup, relativeCgroup, splitLimit } from './cgroups.js';
import { parseCgroupV2 } from './scan.js';

export interface ExplainRequest {
  pid: number;
  /** an address or a name */
  host: string;
  port: number;
  proto: 'tcp' | 'udp';
}

/** `HOST:PORT`, `[v6]:PORT` → host and port */
export function parseTarget(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535))
    throw new AwgError(
      'invalid-config',
      `--to ${JSON.stringify(s)}: write HOST:PORT (an IPv6 address in brackets: [2001:db8::1]:443)`,
    );
  return { host: m[1]!, port };
}

export interface ProcSubject {
  exe?: string;
  uid?: number;
  /** /proc/PID/cgroup's v2 path */
  cgroup?: string;
  flatpak?: string;
}

/** `[Application] name=` of a .flatpak-info */
export function flatpakId(text: string): string | undefined {
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Application]' && line.startsWith('name='))
      return line.slice(5).trim() || undefined;
  }
  return undefined;
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** the process as the rules see it; a process that is gone is an error */
export function readSubject(pid: number, proc = '/proc'): ProcSubject {
  let exe: string | undefined;
  try {
    exe = exeSubject(readlinkSync(`${proc}/${pid}/exe`));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH')
      throw new AwgError('invalid-config', `no process ${pid}`);
    // EACCES (another user's process without privileges): the rest may still be read
  }
  const status = tryRead(`${proc}/${pid}/status`);
  if (status === undefined) throw new AwgError('invalid-config', `no process ${pid}`);
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  const cg = tryRead(`${proc}/${pid}/cgroup`);
  const cgroup = cg === undefined ? undefined : parseCgroupV2(cg);
  const info = tryRead(`${proc}/${pid}/root/.flatpak-info`);
  const flatpak = info === undefined ? undefined : flatpakId(info);
  return {
    ...(exe !== undefined ? { exe } : {}),
    ...(uid !== undefined ? { uid: Number(uid) } : {}),
    ...(cgroup !== undefined ? { cgroup } : {}),
    ...(flatpak !== undefined ? { flatpak } : {}),
  };
}

/**
 * Each rule's destinations with their sources for the reasons (`rules[2].to.cidrs`, a list
 * file relative to the config file). A list that cannot be read again is left out of the
 * sources (the merged set still decides).
 */
export function destinationsWithSources(
  config: Pick<Config, 'rules'>,
  merged: ReadonlyMap<string, DestinationSet>,
  configFile: string | undefined,
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Map<string, RuleDestinations> {
  const out = new Map<string, RuleDestinations>();
  config.rules.forEach((r, i) => {
    const name = ruleName(r, i);
    const set = merged.get(name);
    if (!r.to || !set) return;
    const sources: { label: string; set: DestinationSet }[] = [];
    for (const kind of ['cidrs', 'domains'] as const) {
      const v = r.to[kind];
      if (v?.length)
        sources.push({
          label: `rules[${i}].to.${kind}`,
          set: parseInlineDestinations(v, kind, '', '').set,
        });
    }
    for (const entry of r.to.lists ?? []) {
      const ref = normalListRef(entry);
      if (ref.kind !== 'file') continue;
      const list = ref.file;
      const file = isAbsolute(list) || !configFile ? list : join(dirname(configFile), list);
      try {
        sources.push({ label: listRefLabel(ref), set: parseDestinationList(read(file), file).set });
      } catch {
        /* gone since the config was loaded: no source named */
      }
    }
    out.set(name, { set, sources });
  });
  return out;
}

export interface ExplainEnv {
  source: 'daemon' | 'direct';
  config: Pick<Config, 'rules' | 'default' | 'ipv6'>;
  /** rule name → its destinations (config/load.ts LoadResult.destinations) */
  destinations: ReadonlyMap<string, RuleDestinations>;
  tunnelUp: TunnelUp;
  cgroupRoot: string;
  /** the cgroup v2 mount's root as this process sees it (default `/`) */
  mountRoot?: string | undefined;
  learned?: ((addr: string) => readonly LearnedFact[]) | undefined;
  /** the learned addresses of a name (the daemon's book) */
  learnedAddrs?: ((name: string) => readonly string[]) | undefined;
  now?: number | undefined;
  // ---- injection for tests
  readSubject?: ((pid: number) => ProcSubject) | undefined;
  resolve?: ((host: string) => Promise<string[]>) | undefined;
}

async function systemResolve(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

async function resolveHost(
  host: string,
  env: ExplainEnv,
): Promise<Pick<ExplainDocument['destination'], 'addr' | 'resolvedBy' | 'others'>> {
  if (parseAddr(host)) return { addr: host, resolvedBy: 'literal' };
  const learned = env.learnedAddrs?.(host) ?? [];
  let addrs = [...learned];
  let by: 'learned' | 'getaddrinfo' = 'learned';
  if (!addrs.length) {
    by = 'getaddrinfo';
    try {
      addrs = await (env.resolve ?? systemResolve)(host);
    } catch (e) {
      throw new AwgError('invalid-config', `cannot resolve ${host}: ${(e as Error).message}`);
    }
  }
  if (!addrs.length) throw new AwgError('invalid-config', `${host} has no address`);
  return {
    addr: addrs[0]!,
    resolvedBy: by,
    ...(addrs.length > 1 ? { others: addrs.slice(1) } : {}),
  };
}

export async function explainPid(req: ExplainRequest, env: ExplainEnv): Promise<ExplainDocument> {
  if (!Number.isInteger(req.pid) || req.pid < 1)
    throw new AwgError('invalid-config', `--pid ${req.pid}: a process id is a positive integer`);
  const subject = (env.readSubject ?? readSubject)(req.pid);
  const resolved = await resolveHost(req.host, env);
  const rel =
    subject.cgroup === undefined ? undefined : relativeCgroup(subject.cgroup, env.mountRoot);
  const split = rel === undefined ? undefined : splitLimit(rel);
  const placement: ExplainPlacement | undefined =
    split === undefined ? undefined : classifyCgroup(env.cgroupRoot, split.base);
  const e = explain(
    env.config.rules,
    subject,
    {
      addr: resolved.addr,
      port: req.port,
      proto: req.proto,
      ...(resolved.resolvedBy !== 'literal' ? { name: req.host } : {}),
    },
    {
      destinations: env.destinations,
      tunnelUp: env.tunnelUp,
      defaultRoute: env.config.default,
      ipv6: env.config.ipv6,
      ...(env.learned ? { learned: env.learned } : {}),
      ...(env.now !== undefined ? { now: env.now } : {}),
      ...(placement ? { placement } : {}),
      ...(split?.limit !== undefined ? { limit: split.limit } : {}),
    },
    { cgroupRoot: env.cgroupRoot },
  );
  return {
    source: env.source,
    pid: req.pid,
    subject,
    destination: { host: req.host, ...resolved, port: req.port, proto: req.proto },
    steps: e.steps,
    decision: e.decision,
  };
}
