/**
 * Engine driver for one-shot runs (`awg apply` with no daemon): each WireGuard/AmneziaWG
 * tunnel is served by a detached `awg engine` process attached to the persistent TUN, as
 * wireguard-go serves wg-quick. The configuration, secrets included, goes over the child's
 * stdin (never argv or environment); the child answers `ready` once its UAPI socket listens.
 *
 * Observed state is the spec we last configured (recorded in the state store), valid only
 * while the recorded process is alive, is an `awg engine`, and answers on its UAPI socket
 * with the recorded private key and peer set; peers and allowed IPs it holds beyond the
 * config are reported too (drift, removed by the next apply). Endpoints are compared as
 * configured, not as roamed, so roaming is never "repaired".
 */
import { readableLine } from '../../util/log.js';
import { LONG_RUNNING_NODE_FLAGS } from '../../util/node-flags.js';
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { AWG_BIN } from '../../util/package-root.js';
import type { StateStore } from '../../util/state.js';
import { AwgError } from '../../errors.js';
import { specEqual } from '../../util/canonical.js';
import { fingerprint } from '../../config/fingerprint.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import {
  engineKindOf,
  isProxyEngine,
  type EngineKind,
  type EngineSpec,
  type Resource,
  type WgEngineSpec,
} from '../../model/resources.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { deltaSetText, fullSetText, type EngineSecrets } from './uapi-config.js';
import { parseGet, uapiGet, uapiSet } from './uapi-client.js';
import { detachedLaunch, detachedLiveSpec } from './proxy-detached.js';
import { processIdentity, sameProcess, signalIdentified } from './process-identity.js';
import { liveKeepalive, liveWgSpec } from './live-spec.js';
import { engineArgv } from './own-scope.js';

export const UAPI_DIR_DEFAULT = '/var/run/wireguard';
/** generous: a loaded 2-core host needs seconds to start Node and load the data plane */
export const READY_TIMEOUT_MS = 15_000;

export interface EngineRecord {
  tunnel: string;
  link: string;
  pid: number;
  /** UAPI socket (WireGuard), the control socket (a detached proxy engine), or `` (a proxy in the daemon) */
  uapiPath: string;
  spec: EngineSpec;
  /**
   * `daemon`: the engine runs inside `awg daemon`/`awg up` (pid), written by the in-process
   * host (inproc.ts) so that direct-mode observation (`awg status --direct`) sees it instead
   * of reporting it missing; such a record is never killed from here. Absent: a detached
   * `awg engine` process.
   */
  host?: 'daemon';
  /**
   * The process's boot (/proc/sys/kernel/random/boot_id) and start time (/proc/<pid>/stat
   * field 22): a pid that another process reuses never matches both, so it is never taken
   * for the engine nor signalled (process-identity.ts). Absent only in records written by an
   * awg before they existed: those fall back to the command-line check.
   */
  bootId?: string;
  startTime?: string;
}

export interface ProcessHostOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** command that starts an engine host; default: this Node running bin/awg.js engine */
  command?: string[];
  readyTimeoutMs?: number;
}

/** the state store key of a tunnel's engine record, whichever host wrote it */
export const engineKey = (tunnel: string): string => `engine-${tunnel}`;
const stateKey = engineKey;

/** The engine records in `state` of one host's kind (`engineKindOf` of the recorded spec). */
export function engineRecords(
  state: Pick<StateStore, 'keys' | 'get'>,
  kind: EngineKind,
): EngineRecord[] {
  return state
    .keys()
    .filter((k) => k.startsWith('engine-'))
    .map((k) => state.get<EngineRecord>(k))
    .filter((r): r is EngineRecord => r !== undefined && engineKindOf(r.spec) === kind);
}

function defaultCommand(): string[] {
  return [process.execPath, ...LONG_RUNNING_NODE_FLAGS, AWG_BIN];
}

const identified = (rec: Pick<EngineRecord, 'bootId' | 'startTime'>): boolean =>
  rec.bootId !== undefined && rec.startTime !== undefined;

/**
 * The recorded process still runs and is what the record says: the same boot and start time
 * (a reused pid is not), and an `awg engine` (for `host: daemon`, an awg daemon; for an
 * external engine, a program started for the record's link: `PROGRAM -f <link>`). A record
 * without a process (the kernel engine's) names none.
 */
export function recordAlive(
  rec: Pick<EngineRecord, 'pid' | 'host' | 'bootId' | 'startTime' | 'link' | 'spec'>,
): boolean {
  if (!(rec.pid > 0)) return false;
  if (identified(rec) && !sameProcess(rec)) return false;
  if (rec.host === 'daemon' && rec.pid === process.pid) return true;
  try {
    if (!identified(rec)) process.kill(rec.pid, 0);
    const argv = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0');
    if (rec.host === 'daemon') return argv.includes('daemon') || argv.includes('up');
    return engineKindOf(rec.spec) === 'external'
      ? argv.includes(rec.link)
      : argv.includes('engine');
  } catch {
    return false;
  }
}
const alive = recordAlive;

/** The record of an engine the daemon hosts (inproc.ts). */
export function daemonEngineRecord(spec: EngineSpec, uapiPath: string): EngineRecord {
  return {
    tunnel: spec.tunnel,
    link: isProxyEngine(spec) ? spec.tunnel : spec.link,
    pid: process.pid,
    ...processIdentity(process.pid),
    uapiPath,
    spec,
    host: 'daemon',
  };
}

/**
 * What the engine answering on `uapiPath` holds, as the spec we configured corrected by it
 * (undefined: no answer). Someone may have changed keys, peers or allowed IPs with `wg set`:
 * the extra peers and allowed IPs are shown (live-spec.ts), so the plan repairs them.
 */
export async function uapiLiveSpec(
  spec: WgEngineSpec,
  uapiPath: string,
  fingerprintKey: () => Uint8Array,
  get: (path: string) => Promise<string> = uapiGet,
): Promise<WgEngineSpec | undefined> {
  let got;
  try {
    got = parseGet(await get(uapiPath));
  } catch {
    return undefined;
  }
  const keyHex = got.device.private_key;
  return liveWgSpec(spec, {
    privateKey: keyHex
      ? fingerprint(Buffer.from(keyHex, 'hex').toString('base64'), fingerprintKey())
      : 'none',
    fwmark: Number(got.device.fwmark ?? 0),
    peers: got.peers.map((p) => ({
      publicKey: Buffer.from(String(p.public_key), 'hex').toString('base64'),
      allowedIPs: (p.allowed_ip as string[] | undefined) ?? [],
      endpoint: typeof p.endpoint === 'string' ? p.endpoint : null,
      persistentKeepalive: liveKeepalive(p.persistent_keepalive_interval),
    })),
  });
}

export function secretsFor(
  tunnel: string,
  spec: WgEngineSpec,
  secrets: ReadonlyMap<string, string> | undefined,
): EngineSecrets {
  const base = `tunnels.${tunnel}`;
  const privateKey = secrets?.get(`${base}.privateKey`);
  if (!privateKey)
    throw new AwgError(
      'invalid-config',
      `engine ${tunnel}: the private key was not resolved (run with the secrets available)`,
    );
  const presharedKeys = new Map<string, string>();
  spec.config.peers.forEach((p, i) => {
    const v = secrets?.get(`${base}.peers[${i}].presharedKey`);
    if (v) presharedKeys.set(p.publicKey, v);
  });
  const headerProtectionKey = secrets?.get(`${base}.obfuscation.headerProtectionKey`);
  if (spec.config.obfuscation?.headerProtectionKey !== undefined && !headerProtectionKey)
    throw new AwgError(
      'invalid-config',
      `engine ${tunnel}: the header protection key was not resolved (run with the secrets available)`,
    );
  return { privateKey, presharedKeys, ...(headerProtectionKey ? { headerProtectionKey } : {}) };
}

/** Waits until the recorded process is gone (or its pid belongs to another process). */
async function waitExit(rec: EngineRecord, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(rec)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/**
 * SIGTERM, then SIGKILL after 3 s, to the recorded engine, only while it is that process.
 * A record without an identity (written by an older awg) is signalled by pid after the
 * command-line check, as before.
 */
export async function terminate(rec: EngineRecord): Promise<void> {
  const send = async (sig: NodeJS.Signals) => {
    if (identified(rec)) await signalIdentified(rec, sig);
    else if (alive(rec)) process.kill(rec.pid, sig);
  };
  if (!alive(rec)) return;
  await send('SIGTERM');
  if (!(await waitExit(rec, 3000))) await send('SIGKILL');
}

export function createProcessEngineDriver(opts: ProcessHostOptions = {}): Driver<'engine'> {
  const env = opts.env ?? process.env;
  const uapiDir = () => env.AWG_UAPI_DIR || UAPI_DIR_DEFAULT;

  async function liveSpec(
    rec: EngineRecord,
    fingerprintKey: () => Uint8Array,
  ): Promise<EngineSpec | undefined> {
    if (!alive(rec)) return undefined;
    const spec = rec.spec;
    // a proxy in the daemon has no control socket: the live daemon vouches for its record
    if (isProxyEngine(spec)) return rec.host === 'daemon' ? spec : detachedLiveSpec(rec.uapiPath);
    return uapiLiveSpec(spec, rec.uapiPath, fingerprintKey);
  }

  async function start(spec: EngineSpec, ctx: ApplyContext): Promise<void> {
    const tunnel = spec.tunnel;
    // proxy tunnels: --link names the tunnel, --uapi is the control socket (proxy-host.ts)
    const { link, uapiPath, text } = isProxyEngine(spec)
      ? detachedLaunch(spec, ctx)
      : {
          link: spec.link,
          uapiPath: join(uapiDir(), `${spec.link}.sock`),
          text: fullSetText(spec, secretsFor(tunnel, spec, ctx.secrets)),
        };
    if (!ctx.exec.record(`[spawn] awg engine --link ${link} --uapi ${uapiPath} (config on stdin)`))
      return;
    const stale = ctx.state.get<EngineRecord>(stateKey(tunnel));
    if (stale && alive(stale))
      throw new AwgError(
        'conflict',
        `engine for ${tunnel} already runs as pid ${stale.pid}${stale.host === 'daemon' ? ' (the awg daemon)' : ''}`,
      );
    // Written ahead of the spawn (pid 0: starting) and again with the pid before the engine
    // gets its configuration: a process killed anywhere in between leaves a record, never an
    // engine nobody knows of (stop() finds one that started under a pid-0 record).
    const base = { tunnel, link, uapiPath, spec };
    ctx.state.set<EngineRecord>(stateKey(tunnel), { ...base, pid: 0 });
    const logDir = join(ctx.state.dir, 'logs');
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    const logPath = join(logDir, `engine-${tunnel}.log`);
    const log = openSync(logPath, 'a', 0o600);
    const [cmd, ...args] = engineArgv(
      [...(opts.command ?? defaultCommand()), 'engine', '--link', link, '--uapi', uapiPath],
      `awg engine ${tunnel}`,
    );
    const child = spawn(cmd!, args, {
      detached: true,
      stdio: ['pipe', 'pipe', log],
      env: {
        ...env,
        AWG_ENGINE_TUNNEL: tunnel,
        ...(ctx.state.dir !== ':memory:' ? { AWG_STATE_DIR: ctx.state.dir } : {}),
      },
    });
    // read before the event loop runs again: until then the child cannot have been reaped,
    // so /proc/<pid> is this child (one that already exited fails the start below)
    const identity = child.pid !== undefined ? processIdentity(child.pid) : undefined;
    closeSync(log);
    if (child.pid !== undefined)
      ctx.state.set<EngineRecord>(stateKey(tunnel), { ...base, pid: child.pid, ...identity });
    const ready = new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () =>
          reject(
            new AwgError(
              'driver',
              `engine ${tunnel} did not become ready within ${opts.readyTimeoutMs ?? READY_TIMEOUT_MS} ms`,
            ),
          ),
        opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
      );
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new AwgError('driver', `engine ${tunnel} exited with ${code} during start`));
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new AwgError('driver', `cannot start engine ${tunnel}: ${e.message}`, { cause: e }));
      });
    });
    child.stdin!.on('error', () => {}); // EPIPE when the engine dies before reading: its exit is reported above
    child.stdin!.end(text);
    try {
      await ready;
    } catch (e) {
      child.kill('SIGKILL');
      ctx.state.delete(stateKey(tunnel));
      const tail = existsSync(logPath)
        ? readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).map(readableLine).join('\n')
        : '';
      throw new AwgError(
        (e as AwgError).kind ?? 'driver',
        `${(e as Error).message}${tail ? `\n${tail}` : ''}`,
      );
    }
    child.stdout!.destroy();
    child.unref();
  }

  /**
   * The engine started under a record written ahead of its spawn (pid 0), if a process was
   * started before the starter died: an `awg engine` whose environment names this tunnel and
   * this state directory (process-host's spawn sets both).
   */
  function startedUnder(rec: EngineRecord, stateDir: string): EngineRecord | undefined {
    const want = [`AWG_ENGINE_TUNNEL=${rec.tunnel}`, `AWG_STATE_DIR=${stateDir}`];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        if (!argv.includes('engine') || !argv.includes(rec.link)) continue;
        const envs = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
        if (!want.every((w) => envs.includes(w))) continue;
        const identity = processIdentity(Number(d));
        if (identity) return { ...rec, pid: Number(d), ...identity };
      } catch {
        /* gone, or not ours to read */
      }
    }
    return undefined;
  }

  async function stop(tunnel: string, ctx: ApplyContext): Promise<boolean> {
    const found = ctx.state.get<EngineRecord>(stateKey(tunnel));
    if (!found) return false;
    const rec =
      found.pid === 0 && ctx.state.dir !== ':memory:'
        ? (startedUnder(found, ctx.state.dir) ?? found)
        : found;
    if (rec.host === 'daemon') {
      // the daemon hosts it: never killed from here; its own host forgets the record, and a
      // record left by a daemon that is gone is only forgotten
      if (rec.pid !== process.pid && alive(rec))
        throw new AwgError(
          'conflict',
          `engine ${tunnel} runs in the awg daemon (pid ${rec.pid}): stop it through the daemon (\`awg down\` without --direct)`,
        );
      // bookkeeping of our own state, not a change of the host: no mutation is logged
      if (!ctx.dryRun) ctx.state.delete(stateKey(tunnel));
      return true;
    }
    if (!ctx.exec.record(`[kill] engine ${tunnel} (pid ${rec.pid})`)) return true;
    await terminate(rec);
    rmSync(rec.uapiPath, { force: true });
    ctx.state.delete(stateKey(tunnel));
    return true;
  }

  return {
    kind: 'engine',
    async observe(scope: ObserveScope): Promise<ObserveResult<'engine'>> {
      const resources: Resource<'engine'>[] = [];
      for (const key of scope.state.keys()) {
        if (!key.startsWith('engine-')) continue;
        const rec = scope.state.get<EngineRecord>(key);
        // the kernel's and external programs' engines have hosts of their own (hosts.ts)
        if (!rec || engineKindOf(rec.spec) !== 'embedded') continue;
        const spec = await liveSpec(rec, () => fingerprintKeyOf(scope.state));
        if (spec) resources.push({ kind: 'engine', id: ids.engine(rec.tunnel), spec, deps: [] });
      }
      return { resources, foreign: [] };
    },
    async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
      const spec = change.after ?? change.before!;
      switch (change.action) {
        case 'noop':
          return 'unchanged';
        case 'delete':
          return (await stop(change.before!.tunnel, ctx)) ? 'changed' : 'unchanged';
        case 'create':
        case 'replace': {
          const rec = ctx.state.get<EngineRecord>(stateKey(spec.tunnel));
          if (
            change.action === 'create' &&
            rec &&
            (await liveSpec(rec, () => fingerprintKeyOf(ctx.state))) &&
            specEqual(rec.spec, change.after)
          )
            return 'unchanged';
          await stop(spec.tunnel, ctx);
          await start(change.after!, ctx);
          return 'changed';
        }
        case 'update': {
          const rec = ctx.state.get<EngineRecord>(stateKey(spec.tunnel));
          const before = change.before!;
          const after = change.after!;
          if (isProxyEngine(before) || isProxyEngine(after)) {
            // a proxy engine has no in-place update: restart it with the new configuration
            await stop(spec.tunnel, ctx);
            await start(change.after!, ctx);
            return 'changed';
          }
          if (!rec || !(await liveSpec(rec, () => fingerprintKeyOf(ctx.state)))) {
            await start(change.after!, ctx);
            return 'changed';
          }
          const text = deltaSetText(before, after, secretsFor(spec.tunnel, after, ctx.secrets));
          if (
            ctx.exec.record(`[uapi] set ${rec.uapiPath} (${change.fields?.join(', ') ?? 'config'})`)
          ) {
            await uapiSet(rec.uapiPath, text);
            ctx.state.set<EngineRecord>(stateKey(spec.tunnel), { ...rec, spec: change.after! });
          }
          return 'changed';
        }
      }
    },
  };
}
