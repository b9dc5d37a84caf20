/**
 * The monitor's traffic source on macOS (`awg top`; the seam is reading.ts). Two sources of
 * kernel-kept byte counts, joined per flow:
 *
 * - The flow router (resources/flow/flow-router.ts `flows()`, handed in as `routed`): every
 *   TCP connection it relays, counted where it copies the bytes (its accepted socket's
 *   `bytesRead`/`bytesWritten`: the payload the app sent and was handed back), with the owner,
 *   the rule and the route the router chose, final when the connection closes. These replace
 *   nettop's rows for the same app socket (same 4-tuple: PF's `rdr` rewrites packets, not the
 *   app's pcb), and the router's own upstream sockets are left out (the same bytes again,
 *   under the daemon's pid).
 * - nettop (`NETTOP_STREAM_ARGS`, a long-running child: one CSV sample a second;
 *   nettop.ts): every other TCP and UDP socket of every process, with its pid and NetworkStatistics'
 *   per-socket counters (payload; TCP duplicates and retransmissions taken out, nettop.ts).
 *
 * Not from nettop: libproc has no per-socket byte counts (proc_pidfdinfo PROC_PIDFDSOCKETINFO
 * gives tuples and buffer fill, not totals), and pcblist_n's per-socket traffic-class counters
 * count whole packets (headers and ACKs) at the socket layer; NetworkStatistics is the
 * kernel's per-socket payload count, and nettop is its only command-line reader.
 *
 * Honest limits (docs/platform-macos.md, "the monitor"): a socket that opens and closes
 * between two nettop samples is never seen; a socket's bytes after the last sample before it
 * closed are lost (its last reading is reported `closed`); nettop's rows carry no socket
 * identity, so a new socket on the same 4-tuple and pid is told apart only when its counts
 * are lower than the old one's. Flows of a process that exited before its first sample have
 * no pid (unattributed).
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { isIP } from 'node:net';
import ipaddr, { type IPv6 } from '../../util/ipaddr.js';
import type { ProcTable } from '../darwin.js';
import {
  NETTOP_STREAM_ARGS,
  NettopStreamParser,
  payloadOf,
  type NettopSample,
  type NettopSocketRow,
} from './nettop.js';
import type { FlowReading, ProcessInfo, Reading, TrafficSource } from './reading.js';

/** a connection the flow router relays (structurally resources/flow/flow-router.ts RoutedFlowCount) */
export interface RoutedFlowCount {
  key: string;
  app: { address: string; port: number };
  dst: { host: string; port: number };
  pid?: number;
  rule?: string;
  route: string;
  upstream?: { address: string; port: number };
  sent: number;
  received: number;
  closed?: boolean;
}

/** the latest complete nettop sample, and why there is none */
export interface NettopFeed {
  latest(): NettopSample | undefined;
  problem(): string | undefined;
  close(): void;
}

/** what nettopFeed needs of a child process (node:child_process's, or a test's) */
export interface ChildLike {
  stdout: { on(ev: 'data', f: (chunk: Buffer | string) => void): unknown } | null;
  stderr?: { on(ev: 'data', f: (chunk: Buffer | string) => void): unknown } | null;
  on(ev: 'exit', f: (code: number | null, signal: string | null) => void): unknown;
  on(ev: 'error', f: (e: Error) => void): unknown;
  kill(): unknown;
}

export interface NettopFeedOptions {
  /** default /usr/bin/nettop */
  path?: string;
  spawn?: (cmd: string, args: string[]) => ChildLike;
  /** a monotonic clock, ms (default performance.now) */
  now?: () => number;
  /** after nettop exited, start it again on a read at least this long after its start (default 5 s) */
  restartAfterMs?: number;
}

/**
 * nettop running for as long as the monitor reads: `nettop -L 0 -s 1 -n -x`, parsed as it
 * streams; each sample is complete when the next one's header arrives. If it exits (or cannot
 * start), `problem()` says so and a later read starts it again.
 */
export function nettopFeed(o: NettopFeedOptions = {}): NettopFeed {
  const path = o.path ?? '/usr/bin/nettop';
  const now = o.now ?? (() => performance.now());
  const spawn =
    o.spawn ??
    ((cmd: string, args: string[]) => nodeSpawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let child: ChildLike | undefined;
  let startedAt = -Infinity;
  let latest: NettopSample | undefined;
  let problem: string | undefined;
  let stderr = '';
  let closed = false;
  const start = () => {
    startedAt = now();
    stderr = '';
    const parser = new NettopStreamParser((s) => (latest = s));
    let c: ChildLike;
    try {
      c = spawn(path, NETTOP_STREAM_ARGS);
    } catch (e) {
      problem = `${path} could not start: ${(e as Error).message}`;
      return;
    }
    child = c;
    c.stdout?.on('data', (d) => parser.push(d.toString()));
    c.stderr?.on('data', (d) => (stderr = (stderr + d.toString()).slice(-500)));
    c.on('error', (e) => {
      problem = `${path}: ${e.message}`;
      if (child === c) child = undefined;
    });
    c.on('exit', (code, signal) => {
      parser.end();
      if (child === c) child = undefined;
      if (!closed)
        problem = `${path} exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`;
    });
  };
  return {
    latest() {
      if (!closed && !child && now() - startedAt >= (o.restartAfterMs ?? 5000)) start();
      return latest;
    },
    problem: () => (child && latest ? undefined : problem),
    close() {
      closed = true;
      child?.kill();
      child = undefined;
    },
  };
}

export interface DarwinTrafficOptions {
  /** nettop's counts of every socket (default nettopFeed()); false: only what the router relays */
  nettop?: NettopFeed | false;
  /** the flow router's connections (FlowRouterHost.flows); absent: no router runs */
  routed?: () => readonly RoutedFlowCount[];
  /** libproc (default: native/darwin/libproc.ts, loaded on the first read) */
  procs?: ProcTable;
  /** a monotonic clock, ms (default performance.now) */
  now?: () => number;
}

/** canonical address: IPv4-mapped IPv6 as IPv4, a zone dropped, `*` as the unspecified address */
function canon(a: string, family: 4 | 6): string {
  if (a === '*' || a === '') return family === 6 ? '::' : '0.0.0.0';
  const bare = a.replace(/%.*$/, '');
  if (!ipaddr.isValid(bare)) return bare;
  const p = ipaddr.parse(bare);
  if (p.kind() === 'ipv6' && (p as IPv6).isIPv4MappedAddress())
    return (p as IPv6).toIPv4Address().toString();
  return p.toString();
}

const familyOf = (a: string): 4 | 6 => (isIP(a) === 6 ? 6 : 4);
const end = (address: string, port: number) => `${address}:${port}`;

export function darwinTrafficSource(o: DarwinTrafficOptions = {}): TrafficSource {
  const now = o.now ?? (() => performance.now());
  const nettop = o.nettop === false ? undefined : (o.nettop ?? nettopFeed());
  let procs = o.procs;
  /** closed flows already reported (each once) */
  let reportedClosed = new Set<string>();
  /** nettop flows of the last sample read: base key → last reading; and its sample */
  let lastSample: NettopSample | undefined;
  let lastNettop = new Map<string, FlowReading>();
  /** a base key's generation: bumped when its counts go down (a new socket on the same tuple) */
  const epochs = new Map<string, number>();

  const procTable = async (): Promise<ProcTable> => {
    if (!procs) procs = (await import('../../native/darwin/libproc.js')).libprocTable();
    return procs;
  };

  return {
    async read(): Promise<Reading> {
      const at = now();
      const warnings: string[] = [];
      const flows: FlowReading[] = [];

      // the router's relayed connections: exact, with their rule and route
      const routed = o.routed?.() ?? [];
      const appSockets = new Set<string>();
      const upstreams = new Set<string>();
      const closedNow = new Set<string>();
      for (const r of routed) {
        const host = r.dst.host.replace(/^\[(.*)\]$/, '$1');
        const family = familyOf(host) === 6 && !/^::ffff:\d/i.test(host) ? 6 : 4;
        const local = { addr: canon(r.app.address, family), port: r.app.port };
        const remote = { addr: canon(host, family), port: r.dst.port };
        appSockets.add(`${end(local.addr, local.port)}>${end(remote.addr, remote.port)}`);
        if (r.upstream)
          upstreams.add(
            end(canon(r.upstream.address, familyOf(r.upstream.address)), r.upstream.port),
          );
        const key = `tcp/${family}/${end(local.addr, local.port)}/${end(remote.addr, remote.port)}#router-${r.key}`;
        if (r.closed) {
          closedNow.add(key);
          if (reportedClosed.has(key)) continue;
        }
        flows.push({
          key,
          proto: 'tcp',
          family,
          local,
          remote,
          ...(r.pid !== undefined ? { pid: r.pid } : {}),
          ...(r.rule !== undefined ? { rule: r.rule } : {}),
          route: r.route,
          sent: r.sent,
          received: r.received,
          ...(r.closed ? { closed: true } : {}),
        });
      }
      reportedClosed = closedNow;

      // nettop: every other socket
      if (nettop) {
        const sample = nettop.latest();
        const problem = nettop.problem();
        if (problem)
          warnings.push(
            `per-socket counts from nettop are missing (${problem}); only the connections the flow router relays are counted`,
          );
        if (sample && sample !== lastSample) {
          const seen = new Map<string, FlowReading>();
          for (const row of sample.rows) {
            if (row.kind !== 'socket') continue;
            const f = fromNettop(row, epochs, lastNettop);
            if (row.proto === 'tcp') {
              const pair = `${end(f.local.addr, f.local.port)}>${end(f.remote.addr, f.remote.port)}`;
              if (appSockets.has(pair) || upstreams.has(end(f.local.addr, f.local.port))) continue;
            }
            seen.set(baseKey(row), f);
          }
          // sockets gone since the last sample: their last counts, once, as closed
          for (const [k, f] of lastNettop) if (!seen.has(k)) flows.push({ ...f, closed: true });
          lastNettop = seen;
          lastSample = sample;
          for (const k of epochs.keys()) if (!seen.has(k)) epochs.delete(k);
        }
        flows.push(...lastNettop.values());
      } else if (!o.routed) warnings.push('no traffic source: neither nettop nor the flow router');

      const processes = new Map<number, ProcessInfo>();
      const pids = [...new Set(flows.flatMap((f) => (f.pid !== undefined ? [f.pid] : [])))];
      if (pids.length) {
        const t = await procTable();
        for (const pid of pids) {
          const info = t.info(pid);
          if (!info) continue; // exited: its flows stay, attributed to a pid without details
          const exe = t.path(pid);
          processes.set(pid, {
            pid,
            name: info.comm,
            uid: info.uid,
            ...(exe !== undefined ? { exe } : {}),
          });
        }
      }
      return { at, flows, processes, warnings };
    },
    close() {
      nettop?.close();
    },
  };
}

function baseKey(r: NettopSocketRow): string {
  return `${r.proto}/${r.family}/${end(canon(r.local.address, r.family), r.local.port)}/${end(canon(r.remote.address, r.family), r.remote.port)}#pid-${r.pid ?? '?'}`;
}

/**
 * One nettop socket row as a flow. Its key is the 4-tuple and pid, plus a generation that
 * grows when the counts fell since the last sample (another socket took the tuple).
 */
function fromNettop(
  r: NettopSocketRow,
  epochs: Map<string, number>,
  last: ReadonlyMap<string, FlowReading>,
): FlowReading {
  const base = baseKey(r);
  const { sent, received } = payloadOf(r);
  const prev = last.get(base);
  let epoch = epochs.get(base) ?? 0;
  if (prev && (sent < prev.sent || received < prev.received)) epochs.set(base, ++epoch);
  return {
    key: epoch ? `${base}#${epoch}` : base,
    proto: r.proto,
    family: r.family,
    local: { addr: canon(r.local.address, r.family), port: r.local.port },
    remote: { addr: canon(r.remote.address, r.family), port: r.remote.port },
    ...(r.pid !== undefined ? { pid: r.pid } : {}),
    sent,
    received,
  };
}
