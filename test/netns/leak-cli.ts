/**
 * The leak tests' product: the awg CLI from dist/ (`bin/awg.js`, the shipped product) inside a
 * namespace, optionally in a private mount namespace whose /etc/resolv.conf is `resolvConf`
 * bind-mounted (the host's file is never touched); the daemon (`awg up --json`) and its
 * events; and waits on output and conditions.
 */
import { AWG_BIN, type AwgEnv } from '../helpers/awg.js';
import { netnsPath, nsSpawn, type NsProcess } from '../helpers/netns.js';
import { runProcess } from '../../src/util/exec.js';
import { converged, upEvents, type Up } from './daemon-support.js';

const BIN = AWG_BIN;

export interface CliOpts {
  /** run inside `unshare -m` with this file bind-mounted over /etc/resolv.conf */
  resolvConf?: string;
}

function argvOf(
  ns: string,
  e: AwgEnv,
  args: string[],
  o: CliOpts,
): [string, string[], NodeJS.ProcessEnv] {
  const node = [process.execPath, BIN, ...args];
  if (!o.resolvConf) return ['nsenter', [`--net=${netnsPath(ns)}`, '--', ...node], e.env];
  return [
    'nsenter',
    [
      `--net=${netnsPath(ns)}`,
      '--',
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/resolv.conf && exec "$@"',
      o.resolvConf,
      ...node,
    ],
    // the real path inside the mount namespace
    { ...e.env, AWG_RESOLV_CONF: '' },
  ];
}

const STATEFUL = new Set(['diff', 'apply', 'down', 'status', 'up', 'exec']);
const withState = (e: AwgEnv, args: string[]) => {
  if (!STATEFUL.has(args[0]!)) return args;
  const i = args.indexOf('--');
  return i < 0
    ? [...args, '--state-dir', e.stateDir]
    : [...args.slice(0, i), '--state-dir', e.stateDir, ...args.slice(i)];
};

export async function awgCli(
  ns: string,
  e: AwgEnv,
  args: string[],
  o: CliOpts = {},
): Promise<{ code: number; out: string }> {
  const [cmd, argv, env] = argvOf(ns, e, withState(e, args), o);
  const r = await runProcess(cmd, argv, { env, timeoutMs: 90_000 });
  return { code: r.code, out: `exit ${r.code}\n${r.stdout}\n${r.stderr}` };
}

/** a long-running awg process (`up`, `exec … -- app`) inside `ns` */
export function awgSpawn(ns: string, e: AwgEnv, args: string[], o: CliOpts = {}): NsProcess {
  const [, argv, env] = argvOf(ns, e, withState(e, args), o);
  // argv = --net=… -- cmd …
  return nsSpawn(ns, argv[2]!, argv.slice(3), { env });
}
// ---------------------------------------------------------------------------------------
// the daemon (`awg up --json`), its events on stdout

export type Daemon = Omit<Up, 'mark'>;

export function startDaemon(ns: string, e: AwgEnv, cfg: string, o: CliOpts = {}): Daemon {
  const proc = awgSpawn(ns, e, ['up', '-f', cfg, '--json'], o);
  return { proc, ...upEvents(proc, 60_000) };
}

export { converged };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitOutput(
  p: NsProcess,
  needle: string,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!p.output().includes(needle)) {
    if (Date.now() > end || p.child.exitCode !== null)
      throw new Error(`${what}: no "${needle}" within ${timeoutMs} ms:\n${p.output()}`);
    await sleep(20);
  }
}

/** Poll until `fn` holds (generous timeout; never a timing assertion). */
export async function eventually(
  fn: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(200);
  }
  throw new Error(`not true within ${timeoutMs} ms: ${what}`);
}
