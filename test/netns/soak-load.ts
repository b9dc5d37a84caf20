/**
 * The soak's steady load on the daemon (soak-support.ts): API clients that call in a loop,
 * event streams held open, and matched programs started at a fixed rate in the client's
 * namespace. Each counts what it did and every failure; none throws while it runs.
 */
import { Agent, request } from 'node:http';
import { DaemonClient } from '../../src/daemon/client.js';
import type { DaemonEvent } from '../../src/daemon/core.js';
import { nsSpawn, type NsProcess } from '../helpers/netns.js';
import { openSse, type SseClient } from '../helpers/sse.js';
import type { SoakPrograms } from './soak-programs.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** a call that has not answered after this long is a failure (Diff waits for the run queue) */
const CALL_TIMEOUT_MS = 60_000;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(
        () => reject(new Error(`${what}: no answer in ${CALL_TIMEOUT_MS} ms`)),
        CALL_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(t));
}

// ---------------------------------------------------------------------------------------
// API clients

export interface ApiTargets {
  socket: string;
  /** a config file Diff plans against (never the followed one: its edits are not failures) */
  diffConfig: string;
  /** a live process in the client namespace for Explain, and where it connects */
  explainPid: () => number;
  explainTo: { host: string; port: number };
}

export interface CallStats {
  calls: number;
  failures: number;
  /** the first failures, `client method: message` */
  errors: string[];
  byMethod: Record<string, { calls: number; failures: number; ms: number[] }>;
}

export interface ApiLoad {
  stats: CallStats;
  stop(): Promise<void>;
}

/** the calls of one client in turn: Diff one in six (it observes the whole host) */
const ROTATION = ['Status', 'ListProcesses', 'Explain', 'Status', 'ListProcesses', 'Diff'];

function httpCall(
  agent: Agent,
  socket: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const r = request(
      {
        socketPath: socket,
        agent,
        method,
        path,
        headers: data
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }
          : {},
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200)
            reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
          else {
            try {
              resolve(JSON.parse(text) as unknown);
            } catch (e) {
              reject(new Error(`HTTP 200 without JSON: ${(e as Error).message}`));
            }
          }
        });
      },
    );
    r.on('error', reject);
    r.end(data);
  });
}

function grpcCalls(c: DaemonClient, t: ApiTargets): Record<string, () => Promise<unknown>> {
  return {
    Status: () => c.status(),
    ListProcesses: () => c.listProcesses(),
    Explain: () => c.explain({ pid: t.explainPid(), ...t.explainTo, proto: 'tcp' }),
    Diff: () => c.diff({ configPath: t.diffConfig }),
  };
}

function httpCalls(agent: Agent, t: ApiTargets): Record<string, () => Promise<unknown>> {
  const get = (path: string) => httpCall(agent, t.socket, 'GET', path);
  return {
    Status: () => get('/api/status'),
    ListProcesses: () => get('/api/processes'),
    Explain: () =>
      get(`/api/explain?pid=${t.explainPid()}&to=${t.explainTo.host}:${t.explainTo.port}`),
    Diff: () => httpCall(agent, t.socket, 'POST', '/api/diff', { configPath: t.diffConfig }),
  };
}

/**
 * `grpc` clients of src/daemon/client.ts and `http` clients of the HTTP API (one keep-alive
 * connection each), each calling ROTATION in turn with a pause of `pauseMs` ± 50 % between
 * calls, until stop().
 */
export async function startApiClients(
  t: ApiTargets,
  o: { grpc: number; http: number; pauseMs: number },
): Promise<ApiLoad> {
  const stats: CallStats = { calls: 0, failures: 0, errors: [], byMethod: {} };
  let stopping = false;
  const closers: (() => void)[] = [];
  const loops: Promise<void>[] = [];
  const loop = async (name: string, calls: Record<string, () => Promise<unknown>>, k: number) => {
    for (let i = k; !stopping; i++) {
      const method = ROTATION[i % ROTATION.length]!;
      const m = (stats.byMethod[method] ??= { calls: 0, failures: 0, ms: [] });
      stats.calls++;
      m.calls++;
      const t0 = Date.now();
      try {
        await within(calls[method]!(), `${name} ${method}`);
        m.ms.push(Date.now() - t0);
      } catch (e) {
        stats.failures++;
        m.failures++;
        if (stats.errors.length < 20)
          stats.errors.push(`${name} ${method}: ${(e as Error).message.slice(0, 400)}`);
      }
      await sleep(o.pauseMs * (0.5 + Math.random()));
    }
  };
  for (let i = 0; i < o.grpc; i++) {
    const c = await DaemonClient.open(t.socket);
    closers.push(() => c.close());
    loops.push(loop(`grpc#${i}`, grpcCalls(c, t), i));
  }
  for (let i = 0; i < o.http; i++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(() => agent.destroy());
    loops.push(loop(`http#${i}`, httpCalls(agent, t), i));
  }
  return {
    stats,
    async stop() {
      stopping = true;
      await Promise.all(loops);
      for (const c of closers) c();
    },
  };
}

// ---------------------------------------------------------------------------------------
// event streams

export interface StreamStats {
  name: string;
  events: number;
  reconciles: number;
  /** the event log's sequence numbers of the reconcile-finished events it got */
  seqs: number[];
  gaps: number;
  /** the stream ended while the soak ran (not by stop()) */
  ended?: string;
}

export interface Streams {
  stats: StreamStats[];
  stop(): Promise<void>;
}

/**
 * `grpc` Watch calls and `sse` GET /api/events streams, open until stop(), named from `first`
 * on. `onEvent` gets the events of the first Watch stream.
 */
export async function openStreams(
  socket: string,
  o: { grpc: number; sse: number; first?: number; onEvent?: (e: DaemonEvent) => void },
): Promise<Streams> {
  const n0 = o.first ?? 0;
  const stats: StreamStats[] = [];
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  // ids are `<run>.<seq>` (event-log.ts)
  const count = (s: StreamStats, type: string, id: string) => {
    s.events++;
    if (type === 'reconcile-finished') {
      s.reconciles++;
      s.seqs.push(Number(id.slice(id.indexOf('.') + 1)));
    }
    if (type === 'gap') s.gaps++;
  };
  try {
    for (let i = 0; i < o.grpc; i++) {
      const s: StreamStats = {
        name: `watch#${n0 + i}`,
        events: 0,
        reconciles: 0,
        seqs: [],
        gaps: 0,
      };
      stats.push(s);
      const c = await DaemonClient.open(socket);
      const unsub = await c.watch(
        (e, id) => {
          count(s, e.type, id);
          if (i === 0) o.onEvent?.(e);
        },
        (err) => {
          if (!stopping) s.ended = err ? err.message : 'the daemon ended the stream';
        },
      );
      stops.push(async () => {
        unsub();
        c.close();
      });
    }
    for (let i = 0; i < o.sse; i++) {
      const s: StreamStats = { name: `sse#${n0 + i}`, events: 0, reconciles: 0, seqs: [], gaps: 0 };
      stats.push(s);
      const c: SseClient = await openSse(
        socket,
        '/api/events',
        {},
        {
          keep: false,
          onEvent: (e) => count(s, e.type, e.lastEventId),
        },
      );
      if (c.status !== 200) throw new Error(`GET /api/events: HTTP ${c.status}`);
      void c.closed.then(() => {
        if (!stopping) s.ended = 'the SSE response ended';
      });
      stops.push(() => c.close());
    }
  } catch (e) {
    stopping = true;
    for (const s of stops) await s();
    throw e;
  }
  return {
    stats,
    async stop() {
      stopping = true;
      for (const s of stops) await s();
    },
  };
}

// ---------------------------------------------------------------------------------------
// matched programs

/**
 * Runs in the client's namespace: starts `rate` programs a second (catching up when its timer
 * is late), each `sleep LIFE` under a matched name of this run's (soak-programs.ts): four in
 * five `<dir>/<a>` (matched in every config: its placement is checked, reading
 * /proc/PID/cgroup `checkMs` after the start), one in five `<dir>/<b>` (matched only while the
 * toggled rule exists). Prints its counters as one JSON line a second.
 */
const LAUNCHER = String.raw`
const { spawn } = require('child_process'), fs = require('fs');
const [dir, progA, progB, rate, want, life, checkMs] = process.argv.slice(1);
const c = { started: 0, exited: 0, spawnErrors: 0, checked: 0, placed: 0, unplaced: 0, gone: 0, lastUnplaced: '' };
const t0 = Date.now();
function check(pid) {
  let text;
  try { text = fs.readFileSync('/proc/' + pid + '/cgroup', 'utf8'); } catch { c.gone++; return; }
  c.checked++;
  const path = (/^0::(.*)$/m.exec(text) || [])[1] || text.trim();
  if (path === want || path.startsWith(want + '/')) c.placed++;
  else { c.unplaced++; c.lastUnplaced = path; }
}
function one() {
  const a = c.started % 5 !== 4;
  c.started++;
  let p;
  try { p = spawn(dir + '/' + (a ? progA : progB), [life], { stdio: 'ignore' }); }
  catch { c.spawnErrors++; return; }
  p.on('error', () => c.spawnErrors++);
  p.on('exit', () => c.exited++);
  if (a && p.pid) { const pid = p.pid; setTimeout(() => check(pid), Number(checkMs)); }
}
setInterval(() => {
  const due = Math.floor(((Date.now() - t0) / 1000) * Number(rate));
  for (let n = 0; c.started < due && n < 25; n++) one();
}, 10);
const report = () => process.stdout.write(JSON.stringify({ ...c, ms: Date.now() - t0 }) + '\n');
setInterval(report, 1000);
process.on('SIGTERM', () => { report(); process.exit(0); });
`;

export interface ExecCounts {
  started: number;
  exited: number;
  spawnErrors: number;
  /** starts of program `a` whose cgroup was read */
  checked: number;
  /** …and were in the rule's cgroup */
  placed: number;
  unplaced: number;
  /** exited before the read */
  gone: number;
  lastUnplaced: string;
  /** how long it ran */
  ms: number;
}

/** the counts before the launcher has said anything */
export const NO_EXECS: Readonly<ExecCounts> = {
  started: 0,
  exited: 0,
  spawnErrors: 0,
  checked: 0,
  placed: 0,
  unplaced: 0,
  gone: 0,
  lastUnplaced: '',
  ms: 0,
};

export interface Launcher {
  proc: NsProcess;
  counts(): ExecCounts;
  stop(): Promise<ExecCounts>;
}

export function startLauncher(
  ns: string,
  o: {
    dir: string;
    programs: SoakPrograms;
    rate: number;
    ruleCgroup: string;
    lifeSec: number;
    checkMs: number;
  },
): Launcher {
  const proc = nsSpawn(ns, process.execPath, [
    '-e',
    LAUNCHER,
    o.dir,
    o.programs.a,
    o.programs.b,
    String(o.rate),
    `/${o.ruleCgroup}`,
    String(o.lifeSec),
    String(o.checkMs),
  ]);
  const counts = () => {
    const out = proc.output();
    const end = out.lastIndexOf('}\n');
    if (end < 0) return { ...NO_EXECS };
    const start = out.lastIndexOf('\n', end) + 1;
    try {
      return JSON.parse(out.slice(start, end + 1)) as ExecCounts;
    } catch {
      return { ...NO_EXECS };
    }
  };
  return {
    proc,
    counts,
    async stop() {
      await proc.kill(3000);
      return counts();
    },
  };
}
