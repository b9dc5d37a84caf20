/**
 * The daemon soak (bench/soak.bench.ts; its figures: bench/RESULTS.md "Step 19 — soak"):
 * the real `awg daemon` (bin/awg.js, dist/) in the leak tests' four-namespace topology with
 * its real WireGuard peer (leak-support.ts), run for a set time under churn, all at once:
 * - the followed config rewritten (by rename) every `editEveryMs`, in turn to three configs
 *   that each change something (a rule's target, a rule added or removed, dns.system); each
 *   edit must converge: a `config-changed` then a converged `reconcile-finished` within
 *   `convergeBoundMs` (the next edit waits for that);
 * - the client's underlay veth down for `flapDownMs` every `flapEveryMs`, then up, its default
 *   route (the harness's, not awg's) added back;
 * - the peer restarted every `peerEveryMs` (`awg down`, `awg apply` in its namespace);
 * - matched programs started at `execRate` a second, placed by the daemon's placer (the proc
 *   connector socket is opened here, in the initial namespace, and inherited as fd 3);
 * - API clients (gRPC and HTTP) calling in a loop, event streams (Watch and SSE) held open;
 * - the leak probe: the kill switch is on without allowLan, an unmatched app sends TCP, UDP,
 *   DNS and DNS-over-TLS every 150 ms, tcpdump records the client's underlay (a new file every
 *   `captureRotateMs`), and nothing may leave but WireGuard to the endpoint, ARP, ND and DHCP.
 * Every `sampleEveryMs` the daemon's and its placer child's RSS, anonymous memory and open fds
 * are read, and, when no run is under way and the last one planned with the tunnel health the
 * status shows, the objects: cgroups under awg's subtree, the rules, sets and set elements of table inet awg,
 * the engines and objects the status lists, keyed by config and health (soak-verdict.ts
 * judges them). At the end the churn stops, the tunnel must carry the app's traffic again, and the
 * daemon must stop cleanly (SIGTERM, exit 0, its placer gone).
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DaemonClient } from '../../src/daemon/client.js';
import type { StatusResponse } from '../../src/daemon/core.js';
import { close as closeFd } from '../../src/native/libc.js';
import { openConnectorSocket } from '../../src/procs/connector.js';
import { AWG_BIN, type AwgEnv, cleanupAwgEnv, makeAwgEnv } from '../helpers/awg.js';
import { nsExec, nsSpawn, type NsProcess } from '../helpers/netns.js';
import {
  ROUTER_UL,
  SERVER_RAW_TARGET,
  awgCli,
  buildTopo,
  capture,
  destroyTopo,
  rawApp,
  startPeer,
  type App,
  type Capture,
  type Topo,
} from './leak-support.js';
import { processesIn } from './crash-support.js';
import { VARIANTS, churn, configOf, judgeCapture, writeAtomic } from './soak-churn.js';
import { soakPrograms, type SoakPrograms } from './soak-programs.js';
import {
  Observer,
  childrenOf,
  fdGrowth,
  fdReading,
  procReading,
  type FdReading,
} from './soak-observe.js';
import {
  NO_EXECS,
  openStreams,
  startApiClients,
  startLauncher,
  type ApiLoad,
  type CallStats,
  type ExecCounts,
  type Launcher,
  type StreamStats,
  type Streams,
} from './soak-load.js';

export interface SoakOptions {
  durationMs: number;
  editEveryMs: number;
  convergeBoundMs: number;
  flapEveryMs: number;
  flapDownMs: number;
  peerEveryMs: number;
  execRate: number;
  grpcClients: number;
  httpClients: number;
  /** mean pause of an API client between its calls */
  callPauseMs: number;
  watchStreams: number;
  sseStreams: number;
  sampleEveryMs: number;
  /** samples before this are not judged for growth */
  warmupMs: number;
  captureRotateMs: number;
  /** the daemon's output (its log) is written here at the end */
  daemonLog?: string | undefined;
  log: (line: string) => void;
}

/** The soak's defaults for a run of `durationMs`; warm-up: the first 2 minutes, 20 % of shorter runs. */
export function soakOptions(durationMs: number, o: Partial<SoakOptions> = {}): SoakOptions {
  return {
    durationMs,
    editEveryMs: 5_000,
    convergeBoundMs: 30_000,
    flapEveryMs: 30_000,
    flapDownMs: 2_000,
    peerEveryMs: 120_000,
    execRate: 50,
    grpcClients: 10,
    httpClients: 10,
    callPauseMs: 500,
    watchStreams: 5,
    sseStreams: 5,
    sampleEveryMs: 10_000,
    warmupMs: Math.min(120_000, durationMs * 0.2),
    captureRotateMs: 5 * 60_000,
    log: () => {},
    ...o,
  };
}

export interface ObjectCounts {
  cgroups: number;
  nftRules: number;
  nftSets: number;
  nftElements: number;
  engines: number;
  awgObjects: number;
}

export interface Sample {
  /** ms since the churn started */
  t: number;
  rssKb: number;
  /** RssAnon + VmSwap (soak-observe.ts procReading): what growth is judged on */
  anonKb: number;
  fds: number;
  /** utime + stime of the daemon, clock ticks */
  cpuTicks: number;
  placer?: { pid: number; rssKb: number; anonKb: number; fds: number } | undefined;
  /** other children of the daemon at that moment (nft, ip: short-lived) */
  otherChildren: number;
  /** the status's placement counters */
  placement?: { execs: number; placed: number; errors: number } | undefined;
  load1: number;
}

/** objects read right after an edit converged, no run under way, planned with the health shown */
export interface ObjectSample {
  t: number;
  /** the config and the tunnels' health they belong to */
  key: string;
  objects: ObjectCounts;
}

export interface SoakResult {
  options: Omit<SoakOptions, 'log'>;
  /** the churn's actual length */
  ranMs: number;
  samples: Sample[];
  objectSamples: ObjectSample[];
  edits: { done: number; converged: number; latenciesMs: number[]; notConverged: string[] };
  reconciles: { finished: number; byOutcome: Record<string, number>; notConverged: string[] };
  errorEvents: { count: number; first: string[] };
  flaps: { done: number; failed: string[] };
  peerRestarts: { done: number; failed: string[] };
  execs: ExecCounts;
  placement: StatusResponse['placement'];
  /** placer children seen over the run (more than one: it was restarted) */
  placerPids: number[];
  api: CallStats;
  streams: StreamStats[];
  /** the newest reconcile-finished (event log seq) the streams closed before the observer got */
  streamsUpTo?: number | undefined;
  leak: { leaks: number; first: string[]; wireguard: number; captures: number };
  app: { rounds: number; replies: number; recovered: boolean };
  daemon: {
    pid: number;
    exit?: number | undefined;
    died?: string | undefined;
    leftProcesses: string[];
  };
  /**
   * Open descriptors at rest (no run under way, no API client, one event stream): before the
   * load started and after it stopped, config A converged both times.
   */
  rest: {
    start?: { daemon: FdReading; placer?: FdReading | undefined } | undefined;
    end?: { daemon: FdReading; placer?: FdReading | undefined } | undefined;
    /** what grew, e.g. `daemon socket +1` */
    growth: string[];
  };
  /** the harness's own failures (set-up, a churn step that could not be done) */
  problems: string[];
  load: { start: number[]; end: number[]; max1: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface World {
  t: Topo;
  e: AwgEnv;
  socket: string;
  follow: string;
  configs: string[];
  appDir: string;
  /** this run's matched programs (in appDir), named for it alone */
  programs: SoakPrograms;
  daemon?: NsProcess;
  launcher?: Launcher;
  app?: App;
  api?: ApiLoad;
  /** the first Watch stream, whose events the soak follows (open to the end) */
  observer?: Streams;
  streams?: Streams;
  captures: Capture[];
  sampler?: DaemonClient;
}

async function buildSoakWorld(): Promise<World> {
  const t = await buildTopo('soak');
  const w: World = {
    t,
    e: makeAwgEnv(),
    socket: '',
    follow: '',
    configs: [],
    appDir: '',
    programs: { a: '', b: '' },
    captures: [],
  };
  w.socket = w.e.env.AWG_SOCKET!;
  await startPeer(t);
  const cfgDir = join(w.e.dir, 'configs');
  const followDir = join(w.e.dir, 'follow');
  w.appDir = join(w.e.dir, 'apps');
  for (const d of [cfgDir, followDir, w.appDir]) mkdirSync(d);
  chmodSync(w.appDir, 0o755);
  w.programs = soakPrograms(w.e.cgroupRoot);
  for (const n of [w.programs.a, w.programs.b]) copyFileSync('/bin/sleep', join(w.appDir, n));
  w.configs = VARIANTS.map((v) => {
    const p = join(cfgDir, `${v.label}.yaml`);
    writeFileSync(p, configOf(t, v, w.programs));
    return p;
  });
  w.follow = join(followDir, 'awg.yaml');
  writeAtomic(w.follow, readFileSync(w.configs[0]!, 'utf8'));
  return w;
}

function startDaemon(w: World): NsProcess {
  const fd = openConnectorSocket();
  try {
    return nsSpawn(
      w.t.client,
      process.execPath,
      [AWG_BIN, 'daemon', '--config', w.follow, '--state-dir', w.e.stateDir, '--socket', w.socket],
      { env: { ...w.e.env, AWG_PROC_CONNECTOR_FD: '3' }, fds: [fd] },
    );
  } finally {
    closeFd(fd);
  }
}

/** status through the API once it answers converged, placement active and the tunnel up */
async function waitReady(w: World, c: DaemonClient, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < end) {
    if (w.daemon!.child.exitCode !== null)
      throw new Error(`awg daemon exited ${w.daemon!.child.exitCode}`);
    try {
      const s = await c.status();
      const vpn = s.tunnels.find((x) => x.name === 'vpn');
      last = `state ${s.state}, placement ${s.placement?.state ?? 'none'}, vpn ${vpn?.health ?? 'none'}`;
      if (s.state === 'converged' && s.placement?.state === 'active' && vpn?.health === 'up')
        return;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(500);
  }
  throw new Error(`the daemon is not ready after ${timeoutMs} ms: ${last}`);
}

export async function runSoak(o: SoakOptions, signal?: AbortSignal): Promise<SoakResult> {
  const load0 = loadavg();
  let maxLoad = load0[0]!;
  const r: SoakResult = {
    options: (({ log: _, ...rest }) => rest)(o),
    ranMs: 0,
    samples: [],
    objectSamples: [],
    edits: { done: 0, converged: 0, latenciesMs: [], notConverged: [] },
    reconciles: { finished: 0, byOutcome: {}, notConverged: [] },
    errorEvents: { count: 0, first: [] },
    flaps: { done: 0, failed: [] },
    peerRestarts: { done: 0, failed: [] },
    execs: { ...NO_EXECS },
    placement: undefined,
    placerPids: [],
    api: { calls: 0, failures: 0, errors: [], byMethod: {} },
    streams: [],
    leak: { leaks: 0, first: [], wireguard: 0, captures: 0 },
    app: { rounds: 0, replies: 0, recovered: false },
    daemon: { pid: 0, leftProcesses: [] },
    rest: { growth: [] },
    problems: [],
    load: { start: load0, end: [], max1: maxLoad },
  };
  const obs = new Observer();
  let w: World | undefined;
  try {
    o.log('building the topology, starting the peer');
    w = await buildSoakWorld();
    o.log('starting awg daemon');
    w.daemon = startDaemon(w);
    r.daemon.pid = w.daemon.pid;
    w.sampler = await DaemonClient.open(w.socket);
    await waitReady(w, w.sampler, 120_000);
    // the observer first (it stays to the end), then the rest reading, then the load
    w.observer = await openStreams(w.socket, { grpc: 1, sse: 0, onEvent: (e) => obs.onEvent(e) });
    // its stream starts at the newest event: the health the tunnels reached before, from a status
    const { tunnels } = await w.sampler.status();
    obs.seedHealth(tunnels.map((x) => [x.name, x.health ?? '?'] as const));
    await placerUp(w, w.sampler);
    r.rest.start = await atRest(w, obs);
    w.streams = await openStreams(w.socket, {
      grpc: o.watchStreams - 1,
      sse: o.sseStreams,
      first: 1,
    });
    r.streams = [...w.observer.stats, ...w.streams.stats];
    w.captures.push(await capture(w.t, w.e.dir));
    w.app = rawApp(w.t, 'soak', SERVER_RAW_TARGET, ROUTER_UL);
    await w.app.moreRounds(2);
    w.launcher = startLauncher(w.t.client, {
      dir: w.appDir,
      programs: w.programs,
      rate: o.execRate,
      ruleCgroup: `${w.e.cgroupRoot}/apps`,
      lifeSec: 1,
      checkMs: 100,
    });
    const app = w.app;
    w.api = await startApiClients(
      {
        socket: w.socket,
        diffConfig: w.configs[0]!,
        explainPid: () => app.proc.pid,
        explainTo: { host: SERVER_RAW_TARGET, port: 7001 },
      },
      { grpc: o.grpcClients, http: o.httpClients, pauseMs: o.callPauseMs },
    );
    r.api = w.api.stats;
    o.log(`churn for ${(o.durationMs / 60_000).toFixed(1)} min`);
    await churn(w, o, obs, r, signal, (l) => (maxLoad = Math.max(maxLoad, l)));
  } catch (e) {
    r.problems.push(`harness: ${(e as Error).stack ?? String(e)}`);
  } finally {
    if (w) await finish(w, o, obs, r);
    r.load.end = loadavg();
    r.load.max1 = Math.max(maxLoad, r.load.end[0]!);
  }
  return r;
}

/**
 * The placer has said how it places (its exec gate open, or best-effort) and placed a matched
 * program (it opens a rule's cgroup.procs on the first): what it holds from then on is its own.
 */
async function placerUp(w: World, c: DaemonClient): Promise<void> {
  const end = Date.now() + 60_000;
  let last = 'no status';
  while (Date.now() < end) {
    await nsExec(w.t.client, join(w.appDir, w.programs.a), ['0.2']);
    const p = (await c.status()).placement;
    last = JSON.stringify(p);
    if (p?.mode !== undefined && p.placed > 0) return;
  }
  throw new Error(`the placer placed nothing within 60 s: ${last}`);
}

/** the daemon's and its placer's descriptors once no run has started or ended for 2 s */
async function atRest(
  w: World,
  obs: Observer,
): Promise<{ daemon: FdReading; placer?: FdReading | undefined }> {
  if (!(await obs.quiet(2_000, Date.now() + 60_000)))
    throw new Error('the daemon did not come to rest within 60 s');
  const pid = w.daemon!.pid;
  const placer = childrenOf(pid).find((k) => / placer\b/.test(k.cmd))?.pid;
  // the fewest of five readings: a status poll may hold a file open for a moment
  let best: { daemon: FdReading; placer?: FdReading | undefined } | undefined;
  for (let i = 0; i < 5; i++) {
    const d = fdReading(pid);
    const p = placer === undefined ? undefined : fdReading(placer);
    if (d && (!best || d.count < best.daemon.count)) best = { daemon: d, placer: best?.placer };
    if (best && p && (!best.placer || p.count < best.placer.count)) best.placer = p;
    await sleep(200);
  }
  if (!best) throw new Error('the daemon is gone');
  return best;
}

/** the churn and the sampling, until the time is up, the signal aborts or the daemon dies */
/** stop the load, check recovery and a clean daemon stop, then remove everything */
async function finish(w: World, o: SoakOptions, obs: Observer, r: SoakResult): Promise<void> {
  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      r.problems.push(`${what}: ${(e as Error).message.slice(0, 1000)}`);
    }
  };
  await step('stopping the API clients', async () => {
    await w.api?.stop();
  });
  await step('stopping the streams', async () => {
    if (!w.streams) return;
    await w.streams.stop();
    // the observer stays: what it gets from now on the others cannot
    r.streamsUpTo = Math.max(0, ...w.streams.stats.flatMap((x) => x.seqs));
  });
  await step('stopping the launcher', async () => {
    if (w.launcher) r.execs = await w.launcher.stop();
  });
  const daemonUp = w.daemon && w.daemon.child.exitCode === null;
  if (daemonUp && w.app && !r.problems.length) {
    // the churn is over: the tunnel carries the app's traffic again (its replies come back)
    await step('recovery', async () => {
      const before = w.app!.oks().length;
      const end = Date.now() + 90_000;
      while (Date.now() < end && w.app!.oks().length <= before + 5) await sleep(500);
      r.app.recovered = w.app!.oks().length > before + 5;
    });
    // config A again, converged, then the descriptors at rest as at the start
    await step('the descriptors at rest', async () => {
      const a = readFileSync(w.configs[0]!, 'utf8');
      if (readFileSync(w.follow, 'utf8') !== a) {
        const from = obs.seq;
        const wrote = Date.now();
        writeAtomic(w.follow, a);
        const c = await obs.converged(from, wrote + o.convergeBoundMs);
        if (typeof c === 'string') throw new Error(`config A again: ${c}`);
      }
      const end = await atRest(w, obs);
      r.rest.end = end;
      const start = r.rest.start;
      if (!start) return;
      r.rest.growth = [
        ...fdGrowth(start.daemon, end.daemon).map((g) => `daemon ${g}`),
        ...(start.placer && end.placer
          ? fdGrowth(start.placer, end.placer).map((g) => `placer ${g}`)
          : []),
      ];
    });
  }
  if (daemonUp && w.sampler)
    await step('final status', async () => {
      r.placement = (await w.sampler!.status()).placement;
    });
  if (w.app) {
    r.app.rounds = w.app.rounds();
    r.app.replies = w.app.oks().length;
    await w.app.proc.kill();
  }
  await step('stopping the observer', async () => {
    await w.observer?.stop();
  });
  for (const c of w.captures)
    await step('last capture', async () => judgeCapture(w, r, await c.stop()));
  r.reconciles = {
    finished: obs.finished,
    byOutcome: obs.byOutcome,
    notConverged: obs.notConverged,
  };
  r.errorEvents = obs.errors;
  r.placerPids = [...new Set(r.samples.flatMap((s) => (s.placer ? [s.placer.pid] : [])))];
  w.sampler?.close();
  if (w.daemon) {
    const d = w.daemon;
    await step('daemon stop', async () => {
      const placers = childrenOf(d.pid).filter((k) => / placer\b/.test(k.cmd));
      if (d.child.exitCode === null) {
        d.child.kill('SIGTERM');
        const t = setTimeout(() => d.child.kill('SIGKILL'), 30_000);
        r.daemon.exit = await d.exited;
        clearTimeout(t);
      } else r.daemon.exit = d.child.exitCode;
      await sleep(500);
      for (const p of placers)
        if (procReading(p.pid)) r.daemon.leftProcesses.push(`placer ${p.pid} outlived the daemon`);
      r.daemon.leftProcesses.push(...processesIn(w.t.client));
    });
  }
  if (w.daemon && o.daemonLog) writeFileSync(o.daemonLog, w.daemon.output());
  await step('awg down', async () => {
    const d = await awgCli(w.t.client, w.e, ['down']);
    if (d.code !== 0) throw new Error(d.out);
  });
  o.log('removing the topology');
  await destroyTopo(w.t);
  cleanupAwgEnv(w.e);
}
