/**
 * End-to-end helpers: run the real `awg` CLI inside a test namespace with its own state
 * directory, cgroup subtree (host-wide, so never the default `awg`) and a private
 * resolv.conf; snapshot everything awg may touch; fault-injection wrappers; WireGuard keys.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { engineNice } from '../../src/dataplane/boost.js';
import { generateKeyPair, keyToBase64 } from '../../src/dataplane/crypto/keys.js';
import { autogroupNice, sessionOf } from '../../src/native/sched.js';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cgroup2Mount,
  netnsPath,
  nsExec,
  nsSpawn,
  run,
  snapshotNetns,
  type NetnsSnapshot,
} from './netns.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX_LOADER = join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs');
const CLI_ENTRY = join(REPO_ROOT, 'test/helpers/awg-cli.ts');

/** Absolute path of a system tool (the real one, for wrappers). */
export function which(tool: string): string {
  for (const d of [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ]) {
    if (d && existsSync(join(d, tool))) return join(d, tool);
  }
  throw new Error(`${tool} not found`);
}

function newestMtime(dir: string, ext: string): number {
  let t = 0;
  if (!existsSync(dir)) return 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) t = Math.max(t, newestMtime(p, ext));
    else if (d.name.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

let built = false;
/**
 * The CLI under test runs from the sources (tsx), but it starts tunnel engines as
 * `node bin/awg.js engine`, which runs dist/: build dist when it is missing or older than
 * src/. Once per test process.
 */
export async function ensureDist(): Promise<void> {
  if (built) return;
  const main = join(REPO_ROOT, 'dist/cli/main.js');
  if (
    !existsSync(main) ||
    newestMtime(join(REPO_ROOT, 'src'), '.ts') > newestMtime(join(REPO_ROOT, 'dist'), '.js')
  ) {
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      const c = spawn(
        process.execPath,
        [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
        { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', (code) => resolve({ code: code ?? 1, out }));
    });
    if (!existsSync(main)) throw new Error(`npm run build failed (exit ${r.code}):\n${r.out}`);
  }
  built = true;
}

export interface AwgEnv {
  /** private temp dir: configs, state, resolv.conf, wrappers */
  dir: string;
  stateDir: string;
  resolvConf: string;
  /** the cgroup subtree this test claims (AWG_CGROUP_ROOT) */
  cgroupRoot: string;
  env: NodeJS.ProcessEnv;
}

/** AWG_RUN_DIR of every test env (makeAwgEnv) */
export const TEST_RUN_DIR = join(tmpdir(), 'awgt-run');

export const ORIGINAL_RESOLV =
  '# test resolv.conf, not the host\nnameserver 10.200.0.53\noptions edns0\n';

/** A fresh private environment for one test. Remove it with `cleanupAwgEnv`. */
export function makeAwgEnv(): AwgEnv {
  const dir = mkdtempSync(join(tmpdir(), 'awgt-e2e-'));
  const stateDir = join(dir, 'state');
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, ORIGINAL_RESOLV, { mode: 0o644 });
  chmodSync(resolvConf, 0o644);
  const cgroupRoot = `awgt-${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWG_CGROUP_ROOT: cgroupRoot,
    AWG_RESOLV_CONF: resolvConf,
    AWG_DNS_MANAGER: 'static',
    NO_COLOR: '1',
  };
  // engine UAPI sockets are host-wide paths: keep ours private too
  env.AWG_UAPI_DIR = join(dir, 'uapi');
  // and so is the daemon's API socket: a CLI of this env must never reach a daemon of the
  // machine or of another check (CI's Debian upgrade smoke runs the packaged daemon on
  // /run/awg/awg.sock beside the soak, whose peer applied through it)
  env.AWG_SOCKET = join(dir, 'api.sock');
  // the owner locks (one file per network namespace) outside the host's /run/awg, shared by
  // every test of this run so that two envs in one namespace see each other's locks
  env.AWG_RUN_DIR = TEST_RUN_DIR;
  delete env.AWG_STATE_DIR;
  return { dir, stateDir, resolvConf, cgroupRoot, env };
}

/** cgroup v2 directory of the claimed subtree (may not exist). */
export function cgroupDir(e: AwgEnv): string {
  const m = cgroup2Mount();
  if (!m) throw new Error('no cgroup2 mount');
  return join(m, e.cgroupRoot);
}

function rmCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const d of readdirSync(dir, { withFileTypes: true }))
    if (d.isDirectory()) rmCgroupTree(join(dir, d.name));
  try {
    rmdirSync(dir);
  } catch {
    /* still populated: left for the sweep; never fatal in cleanup */
  }
}

export function cleanupAwgEnv(e: AwgEnv | undefined): void {
  if (!e) return;
  rmCgroupTree(cgroupDir(e));
  rmSync(e.dir, { recursive: true, force: true });
}

export interface AwgRun {
  code: number;
  stdout: string;
  stderr: string;
  /** `[#] …` mutation lines from stderr (text mode) */
  mutations: string[];
  json<T = Record<string, unknown>>(): T;
}

export interface AwgRunOptions {
  /** directories put in front of PATH for the awg process (fake tools) */
  pathPrepend?: string;
  /** command prefix run inside the namespace before node (e.g. setpriv …) */
  wrap?: string[];
  extraEnv?: NodeJS.ProcessEnv;
  /** omit --state-dir */
  noStateDir?: boolean;
  timeoutMs?: number;
  /** run this built CLI (a package's bin/awg.js) instead of the sources through tsx */
  bin?: string;
}

const STATEFUL = new Set(['diff', 'apply', 'down', 'status']);

/**
 * The built CLI: this checkout's bin/awg.js (tsc's dist/), or $AWGT_AWG_BIN — another layout's
 * bin/awg.js. CI's netns runs set it to the bundle as a package installs it
 * (scripts/bundle-layout.mjs: what `npm i -g` and the .deb run): its commands start with ≈ 18 %
 * less CPU than dist/'s, and CI's netns phases keep both cores busy.
 */
export const AWG_BIN = process.env.AWGT_AWG_BIN || join(REPO_ROOT, 'bin/awg.js');

/**
 * How the CLI under test starts: `bin` when given; the built CLI ($AWGT_AWG_BIN, or dist/ once
 * ensureDist() has made it current in this process: 0.3–0.5 s less per command than tsx,
 * hundreds of commands per run); else the sources through tsx.
 */
function cliOf(bin: string | undefined): string[] {
  const b = bin ?? (built || process.env.AWGT_AWG_BIN ? AWG_BIN : undefined);
  return b ? [b] : ['--import', `file://${TSX_LOADER}`, CLI_ENTRY];
}

/** The awg command line (argv) that runs `args` inside `ns`. */
export function awgArgv(ns: string, e: AwgEnv, args: string[], opts: AwgRunOptions = {}): string[] {
  const full = [...args];
  if (STATEFUL.has(args[0]!) && !opts.noStateDir) full.push('--state-dir', e.stateDir);
  return [
    'nsenter',
    `--net=${netnsPath(ns)}`,
    '--',
    ...(opts.wrap ?? []),
    process.execPath,
    ...cliOf(opts.bin),
    ...full,
  ];
}

/** Run `awg args` inside `ns` with the environment `e`; never throws on a non-zero exit. */
export function awg(
  ns: string,
  e: AwgEnv,
  args: string[],
  opts: AwgRunOptions = {},
): Promise<AwgRun> {
  const argv = awgArgv(ns, e, args, opts);
  const env = { ...e.env, ...opts.extraEnv };
  if (opts.pathPrepend) env.PATH = `${opts.pathPrepend}${delimiter}${env.PATH ?? ''}`;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr,
        mutations: stderr.split('\n').filter((l) => l.startsWith('[#] ')),
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(
              `awg ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`,
            );
          }
        },
      });
    });
  });
}

/** Diagnostic text for assertion messages. */
export function show(r: AwgRun): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

export function writeConfig(e: AwgEnv, name: string, yaml: string): string {
  const p = join(e.dir, name);
  writeFileSync(p, yaml);
  return p;
}

// ---------------------------------------------------------------------------------------
// snapshots

export interface HostSnapshot {
  net: NetnsSnapshot;
  /** `sysctl -a` of the namespace's per-interface and forwarding keys */
  sysctls: string;
  /** the resolv.conf awg manages: bytes, mode, symlink target */
  dns: { kind: 'file' | 'symlink' | 'absent'; content?: string; mode?: number; target?: string };
  /** our cgroup subtree (directories, relative) */
  cgroups: string[];
}

function walk(dir: string, rel = ''): string[] {
  if (!existsSync(dir)) return [];
  const out = [rel || '.'];
  for (const d of readdirSync(dir, { withFileTypes: true })
    .filter((x) => x.isDirectory())
    .sort((a, b) => (a.name < b.name ? -1 : 1)))
    out.push(...walk(join(dir, d.name), rel ? `${rel}/${d.name}` : d.name));
  return out;
}

export async function sysctlsOf(ns: string): Promise<string> {
  const r = await nsExec(
    ns,
    'sysctl',
    ['-a', '--pattern', '^net\\.(ipv4\\.conf|ipv6\\.conf|ipv4\\.ip_forward|ipv6\\.conf)'],
    { allowFail: true },
  );
  return r.stdout
    .split('\n')
    .filter((l) => l && !l.includes('stable_secret'))
    .sort()
    .join('\n');
}

export function dnsFileState(path: string): HostSnapshot['dns'] {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return { kind: 'absent' };
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readFileSync(path, 'utf8') };
  return { kind: 'file', content: readFileSync(path).toString('base64'), mode: st.mode & 0o7777 };
}

export async function snapshotHost(ns: string, e: AwgEnv): Promise<HostSnapshot> {
  return {
    net: await snapshotNetns(ns),
    sysctls: await sysctlsOf(ns),
    dns: dnsFileState(e.resolvConf),
    cgroups: walk(cgroupDir(e)),
  };
}

// ---------------------------------------------------------------------------------------
// kernel state readers

export interface IpRule {
  priority: number;
  table?: string;
  protocol?: string;
  fwmark?: string;
  fwmask?: string;
  suppress_prefixlen?: number;
  [k: string]: unknown;
}

export async function ipRules(ns: string, family: 4 | 6): Promise<IpRule[]> {
  return JSON.parse(
    (await nsExec(ns, 'ip', ['-j', '-N', `-${family}`, 'rule', 'show'])).stdout || '[]',
  ) as IpRule[];
}

export interface IpRoute {
  dst: string;
  table?: string;
  type?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  [k: string]: unknown;
}

export async function ipRoutes(ns: string, family: 4 | 6): Promise<IpRoute[]> {
  return JSON.parse(
    (await nsExec(ns, 'ip', ['-j', '-N', `-${family}`, 'route', 'show', 'table', 'all'])).stdout ||
      '[]',
  ) as IpRoute[];
}

/** `nft list table inet NAME`, or undefined when absent */
export async function nftTable(ns: string, name: string): Promise<string | undefined> {
  const r = await nsExec(ns, 'nft', ['list', 'table', 'inet', name], { allowFail: true });
  return r.code === 0 ? r.stdout : undefined;
}

export async function sysctl(ns: string, key: string): Promise<string | undefined> {
  const r = await nsExec(ns, 'sysctl', ['-n', key], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

// ---------------------------------------------------------------------------------------
// fault injection

/** Write an executable `/bin/sh` script `name` into `dir`; returns `dir` (for PATH). */
export function fakeTool(dir: string, name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  chmodSync(p, 0o755);
  return dir;
}

// ---------------------------------------------------------------------------------------
// WireGuard keys

/**
 * A fresh X25519 key pair, base64 as WireGuard writes it. Not node:crypto's
 * generateKeyPairSync + export('jwk'): on Node 20 a garbage collection inside the export can
 * collect the key generation job, whose destructor locks the mutex the export holds — the
 * process hangs for good (seen: a netns test file stuck in ~KeyGenJob under ExportJWKEdKey).
 */
export function wgKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPair();
  return { privateKey: keyToBase64(privateKey), publicKey: keyToBase64(publicKey) };
}

// ---------------------------------------------------------------------------------------
// traffic probes (only between test namespaces)

/**
 * True when a TCP connection from `fromNs` to `addr:port` (served by a listener started in
 * `toNs`) completes and reads the greeting. The listener is stopped before returning.
 */
export async function tcpReachable(
  fromNs: string,
  toNs: string,
  addr: string,
  port: number,
): Promise<boolean> {
  const server = nsSpawn(toNs, process.execPath, [
    '-e',
    `require('net').createServer((s)=>s.end('hello')).listen(${port}, ${JSON.stringify(addr)}, ()=>console.log('listening'))`,
  ]);
  try {
    for (let i = 0; i < 200 && !server.output().includes('listening'); i++)
      await new Promise((r) => setTimeout(r, 10));
    if (!server.output().includes('listening'))
      throw new Error(`listener did not start: ${server.output()}`);
    const r = await nsExec(
      fromNs,
      process.execPath,
      [
        '-e',
        `const s=require('net').connect(${port}, ${JSON.stringify(addr)});let d='';s.setTimeout(1500,()=>{console.log('timeout');process.exit(3)});s.on('data',(x)=>d+=x);s.on('end',()=>{console.log(d);process.exit(d==='hello'?0:4)});s.on('error',(e)=>{console.log(e.code);process.exit(5)})`,
      ],
      { allowFail: true },
    );
    return r.code === 0;
  } finally {
    await server.kill(500);
  }
}

/** True when a UDP datagram from `fromNs` reaches a listener on `addr:port` in `toNs`. */
export async function udpReachable(
  fromNs: string,
  toNs: string,
  addr: string,
  port: number,
): Promise<boolean> {
  const server = nsSpawn(toNs, process.execPath, [
    '-e',
    `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>console.log('got:'+m));s.bind(${port}, ${JSON.stringify(addr)}, ()=>console.log('listening'))`,
  ]);
  try {
    for (let i = 0; i < 200 && !server.output().includes('listening'); i++)
      await new Promise((r) => setTimeout(r, 10));
    if (!server.output().includes('listening'))
      throw new Error(`listener did not start: ${server.output()}`);
    await nsExec(
      fromNs,
      process.execPath,
      [
        '-e',
        `const s=require('dgram').createSocket('udp4');let n=0;const t=setInterval(()=>{s.send('ping',${port},${JSON.stringify(addr)},()=>{});if(++n>=5){clearInterval(t);setTimeout(()=>s.close(),50)}},20);s.on('error',()=>{})`,
      ],
      { allowFail: true },
    );
    for (let i = 0; i < 30 && !server.output().includes('got:ping'); i++)
      await new Promise((r) => setTimeout(r, 10));
    return server.output().includes('got:ping');
  } finally {
    await server.kill(500);
  }
}

/** This process's autogroup as it was when the helpers loaded, before a test started an engine. */
export const OWN_AUTOGROUP = existsSync('/proc/self/autogroup')
  ? readFileSync('/proc/self/autogroup', 'latin1')
  : null;

/** The nice an engine of ours gives its autogroup here (AWG_ENGINE_NICE or boost.ts's default). */
export function expectedEngineNice(): number {
  return engineNice(process.env);
}

/**
 * The only process in `ns` (a detached engine of `awg apply`): its pid, whether it leads its
 * own session, and its autogroup's nice (null: no autogroups on this kernel).
 */
export async function engineGroup(
  ns: string,
): Promise<{ pid: number; leader: boolean; nice: number | null }> {
  const r = await run('ip', ['netns', 'pids', ns]);
  const pids = r.stdout.trim().split('\n').filter(Boolean);
  if (pids.length !== 1) throw new Error(`expected one process in ${ns}, found ${pids.length}`);
  const pid = Number(pids[0]);
  const session = sessionOf(`/proc/${pid}/stat`);
  const nice = autogroupNice(`/proc/${pid}/autogroup`);
  return { pid, leader: session === pid, nice };
}
