/**
 * Step 2 benchmark: the no-op reconcile of a reference config on a converged namespace.
 *
 * - in-process (child inside the namespace, real drivers): observe + plan, target < 50 ms;
 *   also with load/validate/secrets/host facts, the full reconcile machine, and each
 *   driver's observe alone;
 * - CLI wall time of `awg diff` (target < 300 ms) and of a no-op `awg apply`, next to node's
 *   own start-up (`node -e 0`) and the CLI's module load (`awg --version`).
 *
 * Reference config: one WireGuard and one AmneziaWG tunnel (10 allowed-IP prefixes each),
 * 6 per-app rules, kill switch with LAN, DNS on one tunnel (the static resolv.conf backend
 * holds one scope only); applied for real (engines running).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { childSamples, ensureDist, must, ROOT, sh, withBenchNetns } from './apply.bench.js';
import { measure, median, percentile, type Sample } from './lib.js';
import { wgKeyPair } from '../test/helpers/awg.js';

function keyPair(): { priv: string; pub: string } {
  const k = wgKeyPair();
  return { priv: k.privateKey, pub: k.publicKey };
}

export function referenceConfig(): string {
  const a = keyPair();
  const b = keyPair();
  const pa = keyPair();
  const pb = keyPair();
  const prefixes = (n: number) =>
    Array.from({ length: 10 }, (_, i) => `10.200.${n + i}.0/24`).join(', ');
  return `version: 1
tunnels:
  ams:
    type: amneziawg
    privateKey: "${a.priv}"
    addresses: [10.200.50.2/32]
    dns: [10.200.50.1]
    peers:
      - publicKey: "${pa.pub}"
        endpoint: 10.200.9.2:45873
        allowedIPs: [${prefixes(100)}]
        persistentKeepalive: 25
    obfuscation: { jc: 6, jmin: 40, jmax: 70, s1: 68, s2: 149, s3: 32, s4: 16, h1: 471800590-471800690, h2: 1246894907-1246895000, h3: 923637689-923637690, h4: 1769581055-1869581055 }
  fra:
    type: wireguard
    privateKey: "${b.priv}"
    addresses: [10.200.51.7/32]
    peers:
      - publicKey: "${pb.pub}"
        endpoint: 10.200.9.3:51820
        allowedIPs: [${prefixes(120)}]
rules:
  - { name: firefox, match: { name: firefox-esr }, target: ams, fallback: failover }
  - { name: chromium, match: { path: /usr/lib/chromium/** }, target: ams, fallback: allow-direct }
  - { name: torrent, match: { dir: /opt/torrent }, target: ams, fallback: block }
  - { name: backup, match: { regex: '/(firefox|chrom(e|ium))[^/]*$', ignoreCase: true }, target: fra, fallback: block }
  - { name: telemetry, match: { name: telemetry-agent }, target: ams, fallback: drop }
  - { name: updater, match: { path: /usr/bin/apt* }, target: direct }
default: direct
killSwitch: { enabled: true, allowLan: true }
dns: { perApp: true }
`;
}

// ---------------------------------------------------------------------------------------
// child: in-process, inside the namespace

async function child(cfg: string, stateDir: string, runs: number): Promise<Sample[]> {
  const { prepare } = await import('../src/pipeline/prepare.js');
  const { hostEnv } = await import('../src/pipeline/host.js');
  const { loadPlatform } = await import('../src/resources/registry.js');
  const { observeWith, reconcile } = await import('../src/reconciler/run.js');
  const { plan } = await import('../src/reconciler/plan.js');
  const { hasChanges } = await import('../src/model/change.js');
  const { silentReporter } = await import('../src/util/reporter.js');
  const { killSwitchOf } = await import('../src/config/schema.js');
  const { fingerprintKeyIn } = await import('../src/util/host-key.js');

  const platform = await loadPlatform();
  const prep = async () => {
    // the state directory's fingerprint key, as `awg diff` uses: the applied record's fingerprints match
    const r = await prepare(cfg, {
      platform,
      probe: true,
      fingerprintKey: () => fingerprintKeyIn(stateDir),
    });
    if (!r.ok) throw new Error('reference config invalid: ' + JSON.stringify(r.issues));
    return r.prepared;
  };
  const p = await prep();
  const env = await hostEnv({
    platform,
    stateDir,
    reporter: silentReporter,
    claims: p.claims,
    secrets: p.secrets,
  });
  const last = env.applied.load();
  if (!last) throw new Error('reference config was not applied');
  const noop = async (desired = p.desired) => {
    const obs = await observeWith(env, desired);
    const pl = plan(desired, obs, { lastApplied: last.resources });
    if (hasChanges(pl)) throw new Error(`not converged: ${pl.changes.map((c) => c.id).join(', ')}`);
  };
  const n = p.desired.resources.length;
  const out: Sample[] = [
    await measure(
      `no-op reconcile in-process: observe + plan (${n} resources, real drivers)`,
      runs,
      () => noop(),
      { note: 'target < 50 ms' },
    ),
    await measure(
      'no-op reconcile in-process: load + validate + secrets + facts + observe + plan',
      runs,
      async () => noop((await prep()).desired),
    ),
    await measure(
      'no-op reconcile in-process: full reconcile machine (outcome unchanged)',
      runs,
      async () => {
        const ctx = await reconcile(env, {
          desired: p.desired,
          lastApplied: last.resources,
          dryRun: false,
          failClosed: killSwitchOf(p.config).enabled,
        });
        if (ctx.outcome !== 'unchanged') throw new Error(`outcome ${ctx.outcome}`);
      },
    ),
  ];
  for (const [kind, d] of Object.entries(env.drivers)) {
    if (!d) continue;
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await d.observe({ desired: p.desired, claims: env.claims, state: env.state });
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    out.push({
      name: `  observe ${kind}`,
      unit: 'ms',
      runs: xs,
      median: median(xs),
      p90: percentile(xs, 90),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// parent

export interface ReferenceHost {
  ns: string;
  dir: string;
  /** the reference config, applied in `ns` with this checkout's build */
  cfg: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** nsenter arguments that run `args` inside `ns` */
  inNs: (args: string[]) => string[];
}

/** A bench namespace with the reference config applied (engines running); `awg down` after. */
export async function withReferenceApplied<T>(fn: (h: ReferenceHost) => Promise<T>): Promise<T> {
  await ensureDist();
  return withBenchNetns(async (ns, dir) => {
    const cfg = join(dir, 'reference.yaml');
    writeFileSync(cfg, referenceConfig());
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
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
    const inNs = (args: string[]) => ['--net=/var/run/netns/' + ns, '--', ...args];
    const awg = (args: string[]) =>
      sh('nsenter', inNs([process.execPath, join(ROOT, 'bin/awg.js'), ...args]), { env });
    const b = await sh(
      'nsenter',
      inNs(['ip', 'link', 'add', 'awgb0', 'type', 'veth', 'peer', 'name', 'awgb1']),
    );
    if (b.code === 0) {
      await must('nsenter', inNs(['ip', 'addr', 'add', '10.200.9.1/24', 'dev', 'awgb0']));
      await must('nsenter', inNs(['ip', 'link', 'set', 'awgb0', 'up']));
      await must('nsenter', inNs(['ip', 'link', 'set', 'awgb1', 'up']));
    }
    const applied = await awg(['apply', '-f', cfg, '--state-dir', stateDir]);
    if (applied.code !== 0) throw new Error(`reference apply failed:\n${applied.stderr}`);
    try {
      return await fn({ ns, dir, cfg, stateDir, env, inNs });
    } finally {
      await awg(['down', '--state-dir', stateDir]);
    }
  });
}

export async function diffBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 9;
  return withReferenceApplied(async ({ ns, cfg, stateDir, env, inNs }) => {
    const out = await childSamples(ns, 'diff.bench.ts', [cfg, stateDir, String(runs)], env);
    // the machine is shared: each CLI sample notes the 1-minute load average after it ran
    const wall = async (name: string, args: string[], expectCode: number, note?: string) => {
      const s = await measure(name, runs, async () => {
        const r = await sh('nsenter', inNs(args), { env });
        if (r.code !== expectCode)
          throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      });
      const load = `load ${loadavg()[0]!.toFixed(1)}`;
      return { ...s, cpuMedian: undefined, note: note ? `${note}; ${load}` : load };
    };
    const node = process.execPath;
    const bin = join(ROOT, 'bin/awg.js');
    out.push(
      await wall(
        'CLI wall: awg diff (converged, exit 0), nsenter + node start-up included',
        [node, bin, 'diff', '-f', cfg, '--state-dir', stateDir],
        0,
        'target < 300 ms',
      ),
    );
    out.push(
      await wall(
        'CLI wall: awg apply (no-op, 0 mutations)',
        [node, bin, 'apply', '-f', cfg, '--state-dir', stateDir],
        0,
      ),
    );
    out.push(
      await wall(
        '  start-up + load + validate (no drivers, no observe): awg validate',
        [node, bin, 'validate', '-f', cfg],
        0,
      ),
    );
    out.push(await wall('  start-up only: nsenter + node -e 0', [node, '-e', '0'], 0));
    out.push(
      await wall('  start-up + CLI module load: awg --version', [node, bin, '--version'], 0),
    );
    return out;
  });
}

if (process.argv.includes('--child') && process.argv[1]?.endsWith('diff.bench.ts')) {
  const i = process.argv.indexOf('--child');
  child(process.argv[i + 1]!, process.argv[i + 2]!, Number(process.argv[i + 3])).then(
    (s) => console.log('SAMPLES ' + JSON.stringify(s)),
    (e: unknown) => {
      console.error((e as Error).stack ?? e);
      process.exitCode = 1;
    },
  );
}
