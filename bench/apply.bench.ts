/**
 * Step 2 benchmark: installing 10,000 routes through the route driver's `applyBatch` (read of
 * the current tables + one `ip -batch -`) against the anchor, a raw `ip -4 -batch -` of the
 * same 10,000 `route replace` lines, in the same run. Target: < 1 s.
 *
 * Runs in a network namespace the bench creates and removes. The measuring code runs in a
 * child process started inside that namespace (nsenter), so neither side pays for nsenter
 * and in-process reads (/proc/sys, netlink) see the namespace.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, median, percentile, type Sample } from './lib.js';
import { ensureDist, wgKeyPair } from '../test/helpers/awg.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');

// ---------------------------------------------------------------------------------------
// namespace and child plumbing (shared with diff.bench.ts)

export interface Spawned {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, {
      cwd: ROOT,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', reject);
    c.stdin.on('error', () => {});
    const timer = opts.timeoutMs ? setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs) : undefined;
    c.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    c.stdin.end(opts.input ?? '');
  });
}

export async function must(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Spawned> {
  const r = await sh(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r;
}

/** A bench namespace `awgt-bench-<hex>` (the test sweep removes it if a run crashes). */
export async function withBenchNetns<T>(fn: (ns: string, dir: string) => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0)
    throw new Error('the Step 2 benchmarks need root (network namespaces)');
  const ns = `awgt-bench-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'awgt-bench-'));
  await must('ip', ['netns', 'add', ns]);
  try {
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return await fn(ns, dir);
  } finally {
    // engines started by a bench run inside the namespace: stop them before deleting it
    const pids = (await sh('ip', ['netns', 'pids', ns])).stdout
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sh('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run `bench/<file> --child <args>` inside `ns`; it prints its samples as JSON on stdout. */
export async function childSamples(
  ns: string,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Sample[]> {
  const r = await sh(
    'nsenter',
    [
      `--net=/var/run/netns/${ns}`,
      '--',
      process.execPath,
      '--import',
      `file://${TSX}`,
      join(ROOT, 'bench', file),
      '--child',
      ...args,
    ],
    { env },
  );
  if (r.code !== 0) throw new Error(`bench child ${file} failed (exit ${r.code}):\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('SAMPLES '));
  if (!line) throw new Error(`bench child ${file} printed no samples:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice(8)) as Sample[];
}

// ---------------------------------------------------------------------------------------
// the measurement (child, inside the namespace)

const TABLE = 52000;
const DEV = 'awg-bench';

async function child(count: number, runs: number): Promise<Sample[]> {
  const { createLinuxRouteDriver } = await import('../src/resources/route/linux.js');
  const { batchScript, routeReplaceArgs } = await import('../src/resources/route/render.js');
  const { ids } = await import('../src/model/identity.js');
  const { ProcessExec } = await import('../src/util/exec.js');
  const { silentReporter } = await import('../src/util/reporter.js');
  const { MemoryStateStore } = await import('../src/util/state.js');
  type RouteSpec = import('../src/model/resources.js').RouteSpec;
  type Change = import('../src/model/change.js').Change<'route'>;

  // a veth pair (the dummy module may be absent); both ends up so routes via DEV install
  await must('ip', ['link', 'add', DEV, 'type', 'veth', 'peer', 'name', `${DEV}-p`]);
  await must('ip', ['link', 'set', `${DEV}-p`, 'up']);
  await must('ip', ['link', 'set', DEV, 'up']);
  const specs: RouteSpec[] = [];
  for (let i = 0; i < count; i++)
    specs.push({
      family: 4,
      table: TABLE,
      dst: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`,
      type: 'unicast',
      dev: DEV,
      metric: 0,
      protocol: 167,
    });
  const creates: Change[] = specs.map((s) => ({
    kind: 'route',
    id: ids.route(s),
    action: 'create',
    after: s,
    reason: 'bench',
    cause: 'initial',
  }));
  const deletes: Change[] = specs.map((s) => ({
    kind: 'route',
    id: ids.route(s),
    action: 'delete',
    before: s,
    reason: 'bench',
    cause: 'config',
  }));
  const claims = {
    routeProtocol: 167,
    tableBase: 52000,
    bandSize: 100,
    rulePriority: 5200,
    fwmarkMask: 0x0f000000,
    nftTable: 'awg',
    linkPrefix: 'awg-',
    cgroupRoot: 'awgt-bench',
  };
  const exec = new ProcessExec(silentReporter);
  const driver = createLinuxRouteDriver({ exec });
  const ctx = {
    exec,
    reporter: silentReporter,
    state: new MemoryStateStore(),
    dryRun: false,
    claims,
  };
  const flush = () => must('ip', ['-4', 'route', 'flush', 'table', String(TABLE)]);
  const countRoutes = async () =>
    (await must('ip', ['-4', 'route', 'show', 'table', String(TABLE)])).stdout
      .split('\n')
      .filter(Boolean).length;
  const script = batchScript(specs.map(routeReplaceArgs));

  // sanity: both paths really install `count` routes
  await driver.applyBatch(creates, ctx);
  if ((await countRoutes()) !== count) throw new Error('applyBatch did not install every route');
  await flush();
  await must('ip', ['-4', '-batch', '-'], { input: script });
  if ((await countRoutes()) !== count) throw new Error('ip -batch did not install every route');
  await flush();

  const out: Sample[] = [];
  const n = count.toLocaleString('en');
  // alternate the two so a slow moment hits both alike; reset (untimed) after each
  const awgRuns: number[] = [];
  const rawRuns: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const a = await measure('a', 1, () => driver.applyBatch(creates, ctx), { warmup: 0 });
    await flush();
    const b = await measure('b', 1, () => must('ip', ['-4', '-batch', '-'], { input: script }), {
      warmup: 0,
    });
    await flush();
    if (i > 0) {
      awgRuns.push(a.runs[0]!);
      rawRuns.push(b.runs[0]!);
    }
  }
  const sample = (name: string, xs: number[], note?: string): Sample => ({
    name,
    unit: 'ms',
    runs: xs,
    median: median(xs),
    p90: percentile(xs, 90),
    note,
  });
  out.push(
    sample(
      `awg route applyBatch: ${n} routes into an empty table (read + ip -batch)`,
      awgRuns,
      'target < 1000 ms',
    ),
  );
  out.push(sample(`anchor: raw ip -4 -batch - of the same ${n} route replace lines`, rawRuns));

  await driver.applyBatch(creates, ctx);
  out.push(
    await measure(
      `awg route applyBatch: ${n} routes already present (read + compare, 0 mutations)`,
      runs,
      async () => {
        const before = exec.mutations;
        await driver.applyBatch(creates, ctx);
        if (exec.mutations !== before) throw new Error('no-op applyBatch mutated');
      },
    ),
  );
  const delRuns: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = await measure('d', 1, () => driver.applyBatch(deletes, ctx), { warmup: 0 });
    delRuns.push(t.runs[0]!);
    await must('ip', ['-4', '-batch', '-'], { input: script });
  }
  out.push(sample(`awg route applyBatch: delete ${n} routes`, delRuns));
  await flush();
  return out;
}

/**
 * A package layout in `dir`/pkg whose bin runs the bundle (no dist/cli/ beside it), as `npm i -g`
 * and the .deb install it: scripts/bundle-layout.mjs over this checkout's dist/ (build it first).
 * Returns the path of its bin/awg.js.
 */
export async function bundledLayout(dir: string): Promise<string> {
  const r = await must(process.execPath, [join(ROOT, 'scripts/bundle-layout.mjs'), dir]);
  return r.stdout.trim();
}

/**
 * The CLI samples run `node bin/awg.js` (dist/), which also starts the engines: built when
 * missing or older than src/ (the tests' helper; before, a stale dist/ was measured silently).
 */
export { ensureDist };

/** A config whose one WireGuard tunnel has `n` allowed-IP /32 prefixes (→ 2n + 1 routes). */
export function bigTunnelConfig(n: number): string {
  // not generateKeyPairSync + export('jwk'): a Node 20 deadlock (test/helpers/awg.ts)
  const key = () => {
    const k = wgKeyPair();
    return { priv: k.privateKey, pub: k.publicKey };
  };
  const me = key();
  const peer = key();
  const lines = [
    'version: 1',
    'tunnels:',
    '  big:',
    '    type: wireguard',
    `    privateKey: "${me.priv}"`,
    '    addresses: [10.200.50.2/32]',
    '    peers:',
    `      - publicKey: "${peer.pub}"`,
    '        endpoint: 10.200.9.2:51820',
    '        allowedIPs:',
  ];
  for (let i = 0; i < n; i++)
    lines.push(`          - 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  return lines.join('\n') + '\n';
}

/**
 * The same through the product: `node bin/awg.js apply` of `bigTunnelConfig(n)` (link,
 * address, engine with n allowed IPs, 2n + 1 routes in one batch, verification), then a no-op
 * apply and `awg down`. Each command is killed after 120 s (a failed apply rolls routes back
 * one by one, which takes far longer).
 */
async function cliBig(ns: string, dir: string, n: number, runs: number): Promise<Sample[]> {
  const cfg = join(dir, 'big.yaml');
  writeFileSync(cfg, bigTunnelConfig(n));
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, 'nameserver 10.200.0.53\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWG_CGROUP_ROOT: `awgt-bench-${ns.slice(-6)}`,
    AWG_RESOLV_CONF: resolv,
    AWG_DNS_MANAGER: 'static',
    AWG_UAPI_DIR: join(dir, 'uapi'),
    NO_COLOR: '1',
  };
  const stateDir = join(dir, 'cli-state');
  const awg = async (args: string[]) => {
    const r = await sh(
      'nsenter',
      [
        `--net=/var/run/netns/${ns}`,
        '--',
        process.execPath,
        join(ROOT, 'bin/awg.js'),
        ...args,
        '--state-dir',
        stateDir,
      ],
      { env, timeoutMs: 120_000 },
    );
    if (r.code !== 0)
      throw new Error(
        `awg ${args.join(' ')} exited ${r.code}:\n${r.stderr
          .split('\n')
          .filter((l) => !l.startsWith('  '))
          .slice(-15)
          .join('\n')}`,
      );
    return r;
  };
  const apply: number[] = [];
  const noop: number[] = [];
  const down: number[] = [];
  const t = async (xs: number[], fn: () => Promise<unknown>) =>
    xs.push((await measure('x', 1, fn, { warmup: 0 })).runs[0]!);
  for (let i = 0; i < runs; i++) {
    await t(apply, () => awg(['apply', '-f', cfg]));
    await t(noop, async () => {
      const r = await awg(['apply', '-f', cfg]);
      if (/^\[#\]/m.test(r.stderr)) throw new Error('second apply mutated');
    });
    await t(down, () => awg(['down']));
  }
  const k = n.toLocaleString('en');
  const mk = (name: string, xs: number[], note?: string): Sample => ({
    name,
    unit: 'ms',
    runs: xs,
    median: median(xs),
    p90: percentile(xs, 90),
    note,
  });
  return [
    mk(
      `CLI wall: awg apply, 1 tunnel with ${k} allowed IPs (${(2 * n + 1).toLocaleString('en')} routes, engine, verify)`,
      apply,
    ),
    mk(`CLI wall: awg apply again (no-op, 0 mutations), same config`, noop),
    mk(`CLI wall: awg down of that config`, down),
  ];
}

/** Parent side: create the namespace, run the child there, then the CLI path; remove it. */
export async function applyBench(smoke: boolean): Promise<Sample[]> {
  const driver = await withBenchNetns((ns) =>
    childSamples(ns, 'apply.bench.ts', smoke ? ['1000', '1'] : ['10000', '7']),
  );
  await ensureDist();
  const cli = await withBenchNetns((ns, dir) =>
    cliBig(ns, dir, smoke ? 100 : 10_000, smoke ? 1 : 5),
  );
  return [...driver, ...cli];
}

if (process.argv.includes('--child') && process.argv[1]?.endsWith('apply.bench.ts')) {
  const i = process.argv.indexOf('--child');
  const count = Number(process.argv[i + 1]);
  const runs = Number(process.argv[i + 2]);
  child(count, runs).then(
    (s) => console.log('SAMPLES ' + JSON.stringify(s)),
    (e: unknown) => {
      console.error((e as Error).stack ?? e);
      process.exitCode = 1;
    },
  );
}
