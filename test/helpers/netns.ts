/**
 * Network-namespace test harness. Every state-changing command runs inside a namespace the
 * test created; nothing here touches the host's links, routes, rules or firewall.
 *
 * Commands enter a namespace with `nsenter --net=/var/run/netns/NAME`, never `ip netns exec`:
 * the latter remounts /sys, which hides /sys/fs/cgroup (nft `socket cgroupv2` and
 * cgroup.procs stop working) — docs/platform-linux.md#network-namespaces.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runProcess, type ExecResult } from '../../src/util/exec.js';

export const NETNS_DIR = '/var/run/netns';
export const NETNS_PREFIX = 'awgt-';
/** creator pid per namespace, so a sweep never deletes a namespace of a live parallel run */
const OWNER_DIR = '/run/awgt-owners';

// ---------------------------------------------------------------------------------------
// prerequisites

function onPath(tool: string): boolean {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ];
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** Mount point of the cgroup v2 hierarchy, or undefined. */
export function cgroup2Mount(): string | undefined {
  try {
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[2] === 'cgroup2' && f[1]) return f[1];
    }
  } catch {
    /* no /proc */
  }
  return undefined;
}

/**
 * Checks root, `ip`, `nsenter`, the listed tools, /dev/net/tun and a cgroup2 mount.
 * Returns undefined when all are present, otherwise a reason for `describe.skipIf(reason)`.
 * Under CI (`process.env.CI` set) a missing prerequisite throws so the suite fails instead
 * of silently skipping.
 */
export function requireNetnsPrereqs(tools: string[] = []): string | undefined {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('linux');
  else {
    if (process.getuid?.() !== 0) missing.push('root');
    for (const t of ['ip', 'nsenter', ...tools]) if (!onPath(t)) missing.push(t);
    if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
    if (!cgroup2Mount()) missing.push('cgroup2 mount');
  }
  if (missing.length === 0) return undefined;
  const reason = `netns prerequisites missing: ${missing.join(', ')}`;
  if (process.env.CI) throw new Error(`${reason} (CI is set, so this is a failure)`);
  return reason;
}

// ---------------------------------------------------------------------------------------
// running commands

export interface RunOptions {
  input?: string;
  allowFail?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Run a command; throws with stderr on a non-zero exit unless `allowFail`. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  const r = await runProcess(cmd, args, { timeoutMs: 30_000, ...opts });
  if (r.code !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}

export function netnsPath(ns: string): string {
  // an absolute path (/proc/PID/ns/net) names a process's namespace
  return ns.startsWith('/') ? ns : join(NETNS_DIR, ns);
}

/** Run `cmd args` inside namespace `ns` (nsenter --net, host /sys and cgroup paths kept). */
export function nsExec(
  ns: string,
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<ExecResult> {
  return run('nsenter', [`--net=${netnsPath(ns)}`, '--', cmd, ...args], opts);
}

export interface NsProcess {
  readonly ns: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout+stderr collected so far */
  output(): string;
  /** resolves with the exit code (or 128+signal) */
  readonly exited: Promise<number>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone */
  kill(graceMs?: number): Promise<void>;
}

const spawned = new Set<NsProcess>();

/**
 * Start a background process inside `ns`. nsenter execs the command, so `pid` is the
 * command's own pid. It is killed when its namespace is destroyed (`destroyNetns`,
 * `useNetns` cleanup), by `killSpawned()`, and by the process exit hook.
 */
export function nsSpawn(
  ns: string,
  cmd: string,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    /** inherited as fd 3, 4, … (e.g. a proc connector socket) */ fds?: number[];
  } = {},
): NsProcess {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])],
    env: opts.env ?? process.env,
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const p: NsProcess = {
    ns,
    child,
    get pid() {
      return child.pid ?? -1;
    },
    output: () => out,
    exited,
    async kill(graceMs = 2000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      spawned.delete(p);
    },
  };
  spawned.add(p);
  void exited.then(() => spawned.delete(p));
  return p;
}

/**
 * `argv` as a command and its arguments, run in a private mount namespace with `resolvConf`
 * bind-mounted over /etc/resolv.conf when given (each exec in place: the pid stays the
 * program's, inherited fds stay open).
 */
export function inMountNs(argv: string[], resolvConf?: string): [string, string[]] {
  if (resolvConf === undefined) return [argv[0]!, argv.slice(1)];
  return [
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/resolv.conf && exec "$@"',
      resolvConf,
      ...argv,
    ],
  ];
}

export async function killSpawned(): Promise<void> {
  await Promise.all([...spawned].map((p) => p.kill(1000)));
}

// ---------------------------------------------------------------------------------------
// namespace lifecycle

const created = new Set<string>();

function randomSuffix(): string {
  return randomBytes(3).toString('hex');
}

/** Create a namespace `awgt-<prefix>-<random>` with loopback up. */
export async function createNetns(prefix: string): Promise<string> {
  if (!/^[a-z0-9-]{1,20}$/.test(prefix)) throw new Error(`bad netns prefix ${prefix}`);
  const name = `${NETNS_PREFIX}${prefix}-${randomSuffix()}`;
  await run('ip', ['netns', 'add', name]);
  created.add(name);
  try {
    mkdirSync(OWNER_DIR, { recursive: true });
    writeFileSync(join(OWNER_DIR, name), String(process.pid));
  } catch {
    /* the sweep then falls back to the age rule */
  }
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

async function nsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { allowFail: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/** Kill every process inside `ns`, then delete it. Links inside it go away with it. */
export async function destroyNetns(ns: string): Promise<void> {
  if (!ns.startsWith(NETNS_PREFIX)) throw new Error(`refusing to destroy non-test namespace ${ns}`);
  await Promise.all([...spawned].filter((p) => p.ns === ns).map((p) => p.kill(1000)));
  for (let i = 0; i < 20; i++) {
    const pids = await nsPids(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, i < 2 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (existsSync(netnsPath(ns))) await run('ip', ['netns', 'del', ns], { allowFail: true });
  rmSync(join(OWNER_DIR, ns), { force: true });
  created.delete(ns);
}

function ownerAlive(ns: string): boolean | undefined {
  try {
    const pid = Number(readFileSync(join(OWNER_DIR, ns), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  } catch {
    return undefined;
  }
}

/**
 * Delete `awgt-*` namespaces left by crashed runs: those whose creating process is dead,
 * or (without an owner record) older than ten minutes. Never touches other namespaces.
 * Returns the names removed.
 */
export async function sweepStaleNetns(): Promise<string[]> {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR).filter((n) => n.startsWith(NETNS_PREFIX));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const ns of names) {
    if (created.has(ns)) continue;
    const alive = ownerAlive(ns);
    let stale = alive === false;
    if (alive === undefined) {
      try {
        stale = Date.now() - statSync(netnsPath(ns)).mtimeMs > 10 * 60_000;
      } catch {
        stale = false;
      }
    }
    if (!stale) continue;
    await destroyNetns(ns);
    removed.push(ns);
  }
  return removed;
}

// last resort when a test run is interrupted before afterAll
process.once('exit', () => {
  for (const p of spawned) {
    try {
      p.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const ns of created) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      rmSync(join(OWNER_DIR, ns), { force: true });
    } catch {
      /* best effort */
    }
  }
});

// ---------------------------------------------------------------------------------------
// topology

const TEST_V4 = /^10\.200\.\d{1,3}\.\d{1,3}\/\d{1,2}$/;
const TEST_V6 = /^fd00:200::[0-9a-f:]*\/\d{1,3}$/i;

/** Throws unless `cidr` lies in the test ranges 10.200.0.0/16 or fd00:200::/64. */
export function assertTestAddress(cidr: string): void {
  if (!TEST_V4.test(cidr) && !TEST_V6.test(cidr)) {
    throw new Error(`test address ${cidr} is outside 10.200.0.0/16 and fd00:200::/64`);
  }
}

export interface VethOptions {
  addrA?: string | string[];
  addrB?: string | string[];
  /** interface names (≤15 chars); random `awgv<hex>a|b` by default */
  nameA?: string;
  nameB?: string;
}

/** Wait (≤ 3 s) until `dev`'s link-local address and its local route exist, unless IPv6 is off. */
async function ipv6Settled(ns: string, dev: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const off = await nsExec(ns, 'sysctl', ['-n', `net.ipv6.conf.${dev}.disable_ipv6`], {
      allowFail: true,
    });
    if (off.stdout.trim() !== '0') return;
    const a = JSON.parse(
      (await run('ip', ['-n', ns, '-j', '-6', 'addr', 'show', 'dev', dev])).stdout || '[]',
    ) as { addr_info?: { scope?: string; tentative?: boolean }[] }[];
    const ll = (a[0]?.addr_info ?? []).some((x) => x.scope === 'link' && !x.tentative);
    const local = (
      await run('ip', ['-n', ns, '-6', 'route', 'show', 'table', 'local', 'dev', dev])
    ).stdout.includes('fe80');
    if (ll && local) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface VethPair {
  nsA: string;
  nsB: string;
  ifA: string;
  ifB: string;
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

async function addAddr(ns: string, dev: string, cidr: string): Promise<void> {
  assertTestAddress(cidr);
  const v6 = cidr.includes(':');
  await run('ip', [
    '-n',
    ns,
    ...(v6 ? ['-6'] : []),
    'addr',
    'add',
    cidr,
    'dev',
    dev,
    ...(v6 ? ['nodad'] : []),
  ]);
}

/**
 * A veth pair with one end in each namespace, created directly inside `nsA` (never on the
 * host), addresses assigned (IPv6 with `nodad`) and both ends up.
 */
export async function vethPair(
  nsA: string,
  nsB: string,
  opts: VethOptions = {},
): Promise<VethPair> {
  const tag = randomSuffix();
  const ifA = opts.nameA ?? `awgv${tag}a`;
  const ifB = opts.nameB ?? `awgv${tag}b`;
  for (const c of [...list(opts.addrA), ...list(opts.addrB)]) assertTestAddress(c);
  await run('ip', [
    '-n',
    nsA,
    'link',
    'add',
    ifA,
    'type',
    'veth',
    'peer',
    'name',
    ifB,
    'netns',
    nsB,
  ]);
  // no DAD on the veths: a link-local address finishing DAD later adds a `local fe80::…`
  // route, which would make snapshots taken right after setup differ from later ones
  for (const [ns, dev] of [
    [nsA, ifA],
    [nsB, ifB],
  ] as const) {
    await nsExec(ns, 'sysctl', ['-qw', `net.ipv6.conf.${dev}.accept_dad=0`]);
  }
  for (const c of list(opts.addrA)) await addAddr(nsA, ifA, c);
  for (const c of list(opts.addrB)) await addAddr(nsB, ifB, c);
  await run('ip', ['-n', nsA, 'link', 'set', ifA, 'up']);
  await run('ip', ['-n', nsB, 'link', 'set', ifB, 'up']);
  await ipv6Settled(nsA, ifA);
  await ipv6Settled(nsB, ifB);
  return { nsA, nsB, ifA, ifB };
}

// ---------------------------------------------------------------------------------------
// snapshots

export interface NetnsSnapshot {
  routes4: unknown;
  routes6: unknown;
  rules4: unknown;
  rules6: unknown;
  links: unknown;
  addrs: unknown;
  /** `nft -j list ruleset`, or null when nft is not installed */
  nft: unknown;
}

/** keys whose values change on their own (traffic, timers, DAD) */
const VOLATILE = new Set([
  'stats',
  'stats64',
  'lastused',
  'used',
  'expires',
  'valid_life_time',
  'preferred_life_time',
  'tentative',
  'optimistic',
]);

export interface SnapshotOptions {
  /** also drop link `operstate`/`flags` carrier bits that follow the peer (default false) */
  ignoreOperstate?: boolean;
}

/** Drop volatile fields and zero nft counters; pure. */
export function normaliseSnapshotValue(v: unknown, opts: SnapshotOptions = {}): unknown {
  if (Array.isArray(v)) return v.map((x) => normaliseSnapshotValue(x, opts));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (VOLATILE.has(k)) continue;
      if (opts.ignoreOperstate && (k === 'operstate' || k === 'linkmode')) continue;
      if (k === 'counter' && x && typeof x === 'object') {
        out[k] = { packets: 0, bytes: 0 };
        continue;
      }
      if (opts.ignoreOperstate && k === 'flags' && Array.isArray(x)) {
        out[k] = x.filter((f) => f !== 'LOWER_UP' && f !== 'NO-CARRIER' && f !== 'RUNNING');
        continue;
      }
      out[k] = normaliseSnapshotValue(x, opts);
    }
    return out;
  }
  return v;
}

async function jsonIn(ns: string, cmd: string, args: string[]): Promise<unknown> {
  const r = await nsExec(ns, cmd, args);
  const t = r.stdout.trim();
  return t ? (JSON.parse(t) as unknown) : [];
}

/** Everything a test may want to compare before/after, normalised. */
export async function snapshotNetns(
  ns: string,
  opts: SnapshotOptions = {},
): Promise<NetnsSnapshot> {
  const [routes4, routes6, rules4, rules6, links, addrs] = await Promise.all([
    jsonIn(ns, 'ip', ['-j', '-4', 'route', 'show', 'table', 'all']),
    jsonIn(ns, 'ip', ['-j', '-6', 'route', 'show', 'table', 'all']),
    jsonIn(ns, 'ip', ['-j', '-4', 'rule']),
    jsonIn(ns, 'ip', ['-j', '-6', 'rule']),
    jsonIn(ns, 'ip', ['-j', '-d', 'link']),
    jsonIn(ns, 'ip', ['-j', 'addr']),
  ]);
  const nft = onPath('nft') ? await jsonIn(ns, 'nft', ['-j', 'list', 'ruleset']) : null;
  const n = (v: unknown) => normaliseSnapshotValue(v, opts);
  return {
    routes4: n(routes4),
    routes6: n(routes6),
    rules4: n(rules4),
    rules6: n(rules6),
    links: n(links),
    addrs: n(addrs),
    nft: n(nft),
  };
}

// ---------------------------------------------------------------------------------------
// vitest fixtures

export interface NetnsHandle {
  /** the namespace name; valid from beforeAll on */
  readonly name: string;
}

/**
 * Register a namespace for the enclosing describe block: created in beforeAll (after a
 * sweep of stale ones), destroyed with its processes in afterAll even when tests fail.
 */
export function useNetns(prefix: string): NetnsHandle {
  let name: string | undefined;
  beforeAll(async () => {
    await sweepStaleNetns();
    name = await createNetns(prefix);
  });
  afterAll(async () => {
    if (name) await destroyNetns(name);
  });
  return {
    get name() {
      if (!name)
        throw new Error('useNetns: namespace not created yet (use it inside a test or hook)');
      return name;
    },
  };
}

/** Run `fn` with fresh namespaces (one per prefix), destroying them afterwards. */
export async function withNetns<T>(
  prefixes: string | string[],
  fn: (...names: string[]) => Promise<T>,
): Promise<T> {
  const names: string[] = [];
  try {
    for (const p of list(prefixes)) names.push(await createNetns(p));
    return await fn(...names);
  } finally {
    for (const n of names) await destroyNetns(n);
  }
}

/** The packet counter of each rule of an nftables table in `ns`, in rule order (0 for a rule without one). */
export async function nftRuleCounters(
  ns: string,
  family: string,
  table: string,
): Promise<number[]> {
  const doc = (await jsonIn(ns, 'nft', ['-j', 'list', 'table', family, table])) as {
    nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }>;
  };
  return doc.nftables.flatMap((x) =>
    x.rule ? [x.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0] : [],
  );
}
