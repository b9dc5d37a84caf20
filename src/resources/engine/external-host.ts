/**
 * Engine driver for `engine: {external: PROGRAM}`: a userspace engine that speaks UAPI
 * (wireguard-go, amneziawg-go, `awg engine -f`), started as `PROGRAM -f <link>` in a session
 * of its own with `WG_PROCESS_FOREGROUND=1` (and `AWG_UAPI_DIR`, what `awg engine -f` reads),
 * output to `<state>/logs/engine-<tunnel>.log`.
 *
 * - The program attaches to the persistent TUN the link driver made (TUNSETIFF by name on an
 *   existing device joins it; ours is not multi-queue and is owned by root, so a root program
 *   may). wireguard-go sets the link's MTU to its own default (1420) when it attaches, before
 *   its UAPI socket listens: the link's MTU and admin state are read before the start and put
 *   back once the socket answers, so the link driver does not see drift at every (re)start.
 * - Ready: `get=1` answers on `<uapiDir>/<link>.sock`; then the full configuration (the same
 *   UAPI text as our engine's: uapi-config.ts; `fwmark=` the bypass mark, so the kill switch
 *   admits its UDP) is sent. An exit or no answer within the timeout fails the start with the
 *   log's tail, and the process is killed.
 * - Observed (health): the record's process is alive and the same one (pid, boot id, start
 *   time: process-identity.ts; its command line names the link) and its UAPI answers; what it
 *   holds is compared like our engine's (live-spec.ts). A dead, replaced or silent engine is
 *   not observed, so the plan starts it again (restart).
 * - update: a UAPI delta; delete: SIGTERM (SIGKILL after 3 s) to that process only, its socket
 *   removed if it left one, the record forgotten.
 * Hosted by the daemon (`supervise`), each engine's exit is watched (a pidfd: the daemon
 * wakes at once) and reported; engines recorded by an earlier `awg apply` are watched once
 * `adopt` sees them.
 */
import { engineArgv } from './own-scope.js';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AwgError, toAwgError } from '../../errors.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import { readableLine } from '../../util/log.js';
import type { StateStore } from '../../util/state.js';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import {
  engineKindOf,
  isProxyEngine,
  type EngineSpec,
  type Resource,
  type WgEngineSpec,
} from '../../model/resources.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { processIdentity, watchExit, type ProcessIdentity } from './process-identity.js';
import {
  engineKey,
  engineRecords,
  recordAlive,
  secretsFor,
  terminate,
  uapiLiveSpec,
  type EngineRecord,
} from './process-host.js';
import { parseGet, uapiGet, uapiSet } from './uapi-client.js';
import { deltaSetText, fullSetText } from './uapi-config.js';
import type { EngineStats } from './stats.js';

/** generous: a loaded 2-core host needs time to start a Go program (or Node, for awg engine -f) */
export const EXTERNAL_READY_TIMEOUT_MS = 15_000;

export type ExternalEngineSpec = WgEngineSpec & {
  engine: { external: string; uapiDir: string };
};

export const isExternal = (s: EngineSpec): s is ExternalEngineSpec =>
  !isProxyEngine(s) && engineKindOf(s) === 'external';

export const uapiPathOf = (s: ExternalEngineSpec): string =>
  join(s.engine.uapiDir, `${s.link}.sock`);

export interface LinkState {
  mtu: number;
  up: boolean;
}

export interface StartedProcess {
  pid: number | undefined;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(): void;
  /** the parent stops waiting for it (a detached engine outlives `awg apply`) */
  unref(): void;
}

/** What the host does to the system (tests pass fakes). */
export interface ExternalDeps {
  /** `program args` in a session of its own, stdout and stderr to `log` */
  spawn(program: string, args: string[], env: NodeJS.ProcessEnv, log: number): StartedProcess;
  identity(pid: number): ProcessIdentity | undefined;
  alive(rec: EngineRecord): boolean;
  terminate(rec: EngineRecord): Promise<void>;
  watchExit(rec: EngineRecord, onExit: () => void): Promise<() => void>;
  uapiGet(path: string): Promise<string>;
  uapiSet(path: string, text: string): Promise<string>;
  /** undefined: no such link in this namespace */
  linkState(link: string): Promise<LinkState | undefined>;
  setLink(link: string, s: Partial<LinkState>): Promise<void>;
}

async function netlinkLinkState(link: string): Promise<LinkState | undefined> {
  const { NetlinkSocket, dumpLinks } = await import('../../native/netlink.js');
  const sock = NetlinkSocket.open();
  try {
    const l = dumpLinks(sock).find((x) => x.ifname === link);
    return l ? { mtu: l.mtu ?? 0, up: (l.flags & 0x1) !== 0 } : undefined;
  } finally {
    sock.close();
  }
}

async function netlinkSetLink(link: string, s: Partial<LinkState>): Promise<void> {
  const { NetlinkSocket, setLink } = await import('../../native/netlink.js');
  const sock = NetlinkSocket.open();
  try {
    setLink(sock, { name: link, ...s });
  } finally {
    sock.close();
  }
}

export const nativeExternalDeps: ExternalDeps = {
  spawn(program, args, env, log) {
    const [cmd, ...rest] = engineArgv([program, ...args], `awg engine ${program}`);
    const child = spawn(cmd!, rest, { detached: true, stdio: ['ignore', log, log], env });
    return {
      pid: child.pid,
      onExit: (cb) => {
        child.once('exit', (code, signal) => cb(code, signal));
        // a program that cannot be executed never exits: it fails to spawn
        child.once('error', () => cb(null, null));
      },
      kill: () => child.kill('SIGKILL'),
      unref: () => child.unref(),
    };
  },
  identity: processIdentity,
  alive: recordAlive,
  terminate,
  watchExit,
  uapiGet: (p) => uapiGet(p),
  uapiSet: (p, t) => uapiSet(p, t),
  linkState: netlinkLinkState,
  setLink: netlinkSetLink,
};

export interface ExternalHostOptions {
  env?: NodeJS.ProcessEnv | undefined;
  deps?: Partial<ExternalDeps>;
  readyTimeoutMs?: number;
  /** the daemon: each engine's exit is watched and reported (no `awg apply` waits for them) */
  supervise?: (tunnel: string, reason: string) => void;
}

export interface ExternalEngineHost {
  readonly driver: Driver<'engine'>;
  /** watch the external engines the state records (left by `awg apply`), as if started here */
  adopt(state: StateStore): Promise<string[]>;
  /** the last UAPI reading of each watched engine (refreshed in the background when asked) */
  stats(): EngineStats[];
  /** stop every engine this host watches (the daemon stops) */
  closeAll(state?: StateStore): Promise<void>;
  tunnels(): string[];
  /** the link a watched engine serves (the data probe goes through it: link-probe.ts) */
  linkOf(tunnel: string): string | undefined;
}

const stateKey = engineKey;
const b64 = (hex: unknown) => Buffer.from(String(hex), 'hex').toString('base64');

export function createExternalEngineHost(opts: ExternalHostOptions = {}): ExternalEngineHost {
  const env = opts.env ?? process.env;
  const deps: ExternalDeps = { ...nativeExternalDeps, ...opts.deps };
  const readyMs = opts.readyTimeoutMs ?? EXTERNAL_READY_TIMEOUT_MS;
  /** supervised engines: the record, what stops watching it, the last stats */
  const watched = new Map<
    string,
    { rec: EngineRecord; unwatch: () => void; stats?: EngineStats; at: number; state: StateStore }
  >();

  const records = (state: StateStore) =>
    engineRecords(state, 'external') as (EngineRecord & { spec: ExternalEngineSpec })[];

  async function watch(rec: EngineRecord, state: StateStore): Promise<void> {
    if (!opts.supervise) return;
    watched.get(rec.tunnel)?.unwatch();
    const entry = { rec, unwatch: () => {}, at: 0, state };
    watched.set(rec.tunnel, entry);
    entry.unwatch = await deps.watchExit(rec, () => {
      if (watched.get(rec.tunnel) !== entry) return;
      watched.delete(rec.tunnel);
      opts.supervise?.(rec.tunnel, `the external engine (pid ${rec.pid}) exited`);
    });
  }

  function unwatch(tunnel: string): void {
    watched.get(tunnel)?.unwatch();
    watched.delete(tunnel);
  }

  function logTail(path: string): string {
    if (!existsSync(path)) return '';
    return readFileSync(path, 'utf8').trim().split('\n').slice(-5).map(readableLine).join('\n');
  }

  async function start(spec: ExternalEngineSpec, ctx: ApplyContext): Promise<void> {
    const { external: program, uapiDir } = spec.engine;
    const uapiPath = uapiPathOf(spec);
    const text = fullSetText(spec, secretsFor(spec.tunnel, spec, ctx.secrets));
    if (!ctx.exec.record(`[spawn] ${program} -f ${spec.link} (UAPI ${uapiPath})`)) return;
    const before = await deps.linkState(spec.link);
    const logDir = join(ctx.state.dir, 'logs');
    let logPath = '/dev/null';
    if (ctx.state.dir !== ':memory:') {
      mkdirSync(logDir, { recursive: true, mode: 0o700 });
      logPath = join(logDir, `engine-${spec.tunnel}.log`);
    }
    const log = openSync(logPath, 'a', 0o600);
    let child: StartedProcess;
    try {
      child = deps.spawn(
        program,
        ['-f', spec.link],
        {
          ...env,
          WG_PROCESS_FOREGROUND: '1',
          AWG_UAPI_DIR: uapiDir,
          AWG_ENGINE_TUNNEL: spec.tunnel,
        },
        log,
      );
    } finally {
      closeSync(log);
    }
    // read before the event loop runs again: until then the child cannot have been reaped
    const identity = child.pid !== undefined ? deps.identity(child.pid) : undefined;
    const rec: EngineRecord = {
      tunnel: spec.tunnel,
      link: spec.link,
      pid: child.pid ?? 0,
      ...identity,
      uapiPath,
      spec,
    };
    // recorded before it is configured: a starter killed from here on leaves a process the
    // next run finds (and replaces), not one holding the TUN that nobody knows of
    if (child.pid !== undefined) ctx.state.set<EngineRecord>(stateKey(spec.tunnel), rec);
    let exited: string | undefined;
    child.onExit((code, signal) => {
      exited = signal
        ? `signal ${signal}`
        : code === null
          ? 'could not be started'
          : `code ${code}`;
    });
    const fail = (why: string, cause?: unknown): never => {
      child.kill();
      ctx.state.delete(stateKey(spec.tunnel));
      const tail = logTail(logPath);
      throw new AwgError(
        'driver',
        `external engine ${spec.tunnel} (${program}): ${why}${tail ? `\n${tail}` : ''}`,
        {
          ...(cause !== undefined ? { cause } : {}),
        },
      );
    };
    const end = Date.now() + readyMs;
    for (;;) {
      if (exited) fail(`exited during start (${exited})`);
      try {
        await deps.uapiGet(uapiPath);
        break;
      } catch {
        if (Date.now() > end)
          fail(`its UAPI socket ${uapiPath} did not answer within ${readyMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    try {
      await deps.uapiSet(uapiPath, text);
    } catch (e) {
      fail(`configuring it over UAPI failed: ${(e as Error).message}`, e);
    }
    // wireguard-go set the link's MTU to its default when it attached: put it back
    const now = await deps.linkState(spec.link);
    if (before && now && (now.mtu !== before.mtu || now.up !== before.up)) {
      const fix: Partial<LinkState> = {
        ...(now.mtu !== before.mtu ? { mtu: before.mtu } : {}),
        ...(now.up !== before.up ? { up: before.up } : {}),
      };
      if (
        ctx.exec.record(
          `[netlink] ip link set dev ${spec.link} ${fix.mtu !== undefined ? `mtu ${fix.mtu} ` : ''}${fix.up !== undefined ? (fix.up ? 'up' : 'down') : ''}(as before ${program} attached)`,
        )
      )
        await deps.setLink(spec.link, fix);
    }
    if (!opts.supervise) child.unref();
    await watch(rec, ctx.state);
    // exited between the answer and now: the next observation starts it again
    if (exited) opts.supervise?.(spec.tunnel, `the external engine exited (${exited})`);
  }

  async function stop(tunnel: string, ctx: ApplyContext): Promise<boolean> {
    const rec = ctx.state.get<EngineRecord>(stateKey(tunnel));
    if (!rec || !isExternal(rec.spec)) return false;
    if (!ctx.exec.record(`[kill] external engine ${tunnel} (pid ${rec.pid})`)) return true;
    unwatch(tunnel);
    await deps.terminate(rec);
    // a program killed hard leaves its socket behind (wireguard-go removes it on a clean exit)
    rmSync(rec.uapiPath, { force: true });
    ctx.state.delete(stateKey(tunnel));
    return true;
  }

  async function live(rec: EngineRecord & { spec: ExternalEngineSpec }, key: () => Uint8Array) {
    if (!deps.alive(rec)) return undefined;
    return uapiLiveSpec(rec.spec, rec.uapiPath, key, deps.uapiGet);
  }

  async function refresh(tunnel: string): Promise<void> {
    const w = watched.get(tunnel);
    if (!w) return;
    w.at = Date.now();
    let got: ReturnType<typeof parseGet> | undefined;
    try {
      got = parseGet(await deps.uapiGet(w.rec.uapiPath));
    } catch {
      got = undefined;
    }
    w.stats = {
      tunnel,
      type: w.rec.spec.type,
      link: w.rec.link,
      up: got !== undefined,
      peers: (got?.peers ?? []).map((p) => {
        const at =
          Number(p.last_handshake_time_sec ?? 0) * 1000 +
          Math.floor(Number(p.last_handshake_time_nsec ?? 0) / 1e6);
        return {
          publicKey: b64(p.public_key),
          ...(typeof p.endpoint === 'string' ? { endpoint: p.endpoint } : {}),
          lastHandshakeMs: at,
          rxBytes: Number(p.rx_bytes ?? 0),
          txBytes: Number(p.tx_bytes ?? 0),
          // UAPI does not say how long an initiation waits: never rated down by handshakes
          handshakePendingMs: 0,
          hasSession: at > 0 && Date.now() - at < 180_000,
        };
      }),
    };
  }

  const driver: Driver<'engine'> = {
    kind: 'engine',
    async observe(scope: ObserveScope): Promise<ObserveResult<'engine'>> {
      const resources: Resource<'engine'>[] = [];
      for (const rec of records(scope.state)) {
        const spec = await live(rec, () => fingerprintKeyOf(scope.state));
        if (spec) resources.push({ kind: 'engine', id: ids.engine(rec.tunnel), spec, deps: [] });
      }
      return { resources, foreign: [] };
    },
    async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
      const spec = (change.after ?? change.before)!;
      switch (change.action) {
        case 'noop':
          return 'unchanged';
        case 'delete':
          return (await stop(spec.tunnel, ctx)) ? 'changed' : 'unchanged';
        case 'create':
        case 'replace': {
          const after = change.after!;
          if (!isExternal(after))
            throw new AwgError(
              'bug',
              `external host asked to run ${after.tunnel} (${engineKindOf(after)})`,
            );
          await stop(after.tunnel, ctx);
          await start(after, ctx);
          return 'changed';
        }
        case 'update': {
          const before = change.before!;
          const after = change.after!;
          if (!isExternal(after) || !isExternal(before))
            throw new AwgError('bug', `external host asked to update ${after.tunnel}`);
          const rec = ctx.state.get<EngineRecord>(stateKey(after.tunnel));
          if (
            !rec ||
            !isExternal(rec.spec) ||
            !(await live({ ...rec, spec: rec.spec }, () => fingerprintKeyOf(ctx.state)))
          ) {
            await stop(after.tunnel, ctx);
            await start(after, ctx);
            return 'changed';
          }
          const text = deltaSetText(before, after, secretsFor(after.tunnel, after, ctx.secrets));
          if (
            ctx.exec.record(`[uapi] set ${rec.uapiPath} (${change.fields?.join(', ') ?? 'config'})`)
          ) {
            try {
              await deps.uapiSet(rec.uapiPath, text);
            } catch (e) {
              throw toAwgError(e, 'driver');
            }
            const next = { ...rec, spec: after };
            ctx.state.set<EngineRecord>(stateKey(after.tunnel), next);
            const w = watched.get(after.tunnel);
            if (w) w.rec = next;
          }
          return 'changed';
        }
      }
    },
  };

  return {
    driver,
    async adopt(state) {
      const out: string[] = [];
      if (!opts.supervise) return out;
      for (const rec of records(state)) {
        if (watched.has(rec.tunnel) || !deps.alive(rec)) continue;
        await watch(rec, state);
        out.push(rec.tunnel);
      }
      return out;
    },
    stats() {
      const now = Date.now();
      for (const [t, w] of watched) if (now - w.at >= 1000) void refresh(t);
      return [...watched.values()].flatMap((w) => (w.stats ? [w.stats] : []));
    },
    async closeAll() {
      for (const [tunnel, w] of [...watched]) {
        unwatch(tunnel);
        await deps.terminate(w.rec);
        rmSync(w.rec.uapiPath, { force: true });
        w.state.delete(stateKey(tunnel));
      }
    },
    tunnels: () => [...watched.keys()],
    linkOf: (tunnel) => watched.get(tunnel)?.rec.spec.link,
  };
}
