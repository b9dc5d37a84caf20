/**
 * The gRPC API of `awg daemon` on a Unix socket (proto/awg.proto), a thin shell over
 * DaemonCore. Access control is the socket's file mode: 0600 owned by the daemon's user
 * (root), or 0660 with a configured group. The seed system's 0666 socket let any local user
 * drive the VPN; here any doubt about the path refuses to start:
 *
 * - the directory must be ours (or root's) and not writable by others (sticky excepted);
 * - a symlink, a non-socket, a socket owned by someone else, or one whose mode grants more
 *   than we would grant, is refused (never removed: it is not ours to judge);
 * - a socket that answers is refused (another daemon is running);
 * - a stale socket of ours (nobody listening) is replaced.
 *
 * The socket is bound inside a fresh 0700 directory, given its mode and group there, and
 * renamed into place: nobody can connect during the window where the mode is still the
 * umask's.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AwgError, toAwgError } from '../errors.js';
import type { DaemonCore } from './core.js';
import {
  applyRequestFromWire,
  applyResponseToWire,
  diffResponseToWire,
  downResponseToWire,
  ERROR_TRAILER,
  errorToWire,
  eventToWire,
  processesToWire,
  statusToWire,
  type Wire,
} from './convert.js';
import { DEFAULT_SOCKET, socketAnswers } from './socket.js';
import { awgService } from './grpc-service.js';
/** a Watch client this far behind is cut off rather than buffered without bound */
const MAX_WATCH_BACKLOG = 10_000;


export interface ApiServerOptions {
  socketPath?: string;
  /** group (name or gid) allowed to use the socket: mode 0660 instead of 0600 */
  group?: string | number;
  /** /etc/group, for resolving group names (tests) */
  groupFile?: string;
  /** an error of the listening socket (EMFILE on accept, …): reported, the server keeps serving */
  onError?: (e: Error) => void;
}

export interface ApiServer {
  socketPath: string;
  close(): Promise<void>;
}

/** Resolve a group name or number through /etc/group (no NSS: a daemon's group is local). */
export function resolveGroup(group: string | number, groupFile = '/etc/group'): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    /* reported below */
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new AwgError('invalid-config', `unknown group ${group} (not in ${groupFile})`);
}

function refuse(path: string, why: string): AwgError {
  return new AwgError('permission', `refusing to serve the API on ${path}: ${why}`, { hint: 'remove or fix the path yourself after checking who created it, or choose another --socket' });
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Check (and create) the socket's directory and whatever is at the path; remove a stale
 * socket of ours. Throws a `permission` AwgError on anything insecure.
 */
export async function preflightSocket(path: string, o: { uid: number; gid: number | undefined }): Promise<void> {
  const dir = dirname(path);
  if (!lstatOrUndefined(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
  const d = statSync(dir);
  if (!d.isDirectory()) throw refuse(path, `${dir} is not a directory`);
  if (d.uid !== o.uid && d.uid !== 0) throw refuse(path, `${dir} is owned by uid ${d.uid}`);
  if (d.mode & 0o022 && !(d.mode & 0o1000)) throw refuse(path, `${dir} is writable by others (mode ${(d.mode & 0o7777).toString(8)})`);
  const st = lstatOrUndefined(path);
  if (!st) return;
  if (st.isSymbolicLink()) throw refuse(path, 'it is a symbolic link');
  if (!st.isSocket()) throw refuse(path, 'it exists and is not a socket');
  if (st.uid !== o.uid) throw refuse(path, `the socket there is owned by uid ${st.uid}`);
  const allowed = o.gid !== undefined && st.gid === o.gid ? 0o660 : 0o600;
  if (st.mode & 0o777 & ~allowed) throw refuse(path, `the socket there has mode ${(st.mode & 0o777).toString(8)} (more than ${allowed.toString(8)})`);
  const probe = await socketAnswers(path);
  if (probe.ok) throw refuse(path, 'a server is listening on it (is another awg daemon running?)');
  unlinkSync(path);
}

function serviceError(e: unknown): Partial<grpc.ServiceError> {
  const err = toAwgError(e);
  const w = errorToWire(err);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_TRAILER, Buffer.from(w.trailer, 'utf8'));
  return { code: w.code, details: err.message, metadata };
}

function unary<Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let p: Promise<Res>;
    try {
      p = fn(call.request);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (r) => callback(null, r),
      (e: unknown) => callback(serviceError(e)),
    );
  };
}

function handlers(core: DaemonCore, watches: Set<() => void>): grpc.UntypedServiceImplementation {
  const watch: grpc.handleServerStreamingCall<object, Wire.Event> = (call) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      unsubscribe();
      watches.delete(end);
    };
    const end = () => {
      finish();
      call.end();
    };
    const unsubscribe = core.subscribe((e) => {
      if (done) return;
      if (call.writableLength > MAX_WATCH_BACKLOG) {
        finish();
        call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `watch client fell ${MAX_WATCH_BACKLOG} events behind` });
        return;
      }
      call.write(eventToWire(e));
    });
    watches.add(end);
    call.on('cancelled', finish);
    call.on('close', finish);
    call.on('error', finish);
    // headers now, so the client knows the subscription is live before the first event
    call.sendMetadata(new grpc.Metadata());
  };
  return {
    Apply: unary(async (w: Wire.ApplyRequest) => applyResponseToWire(await core.apply(applyRequestFromWire(w)))),
    Diff: unary(async (w: Wire.DiffRequest) => {
      if (!w.configPath) throw new AwgError('invalid-config', 'config path missing');
      return diffResponseToWire(await core.diff({ configPath: w.configPath }));
    }),
    Status: unary(async () => statusToWire(await core.status())),
    Down: unary(async () => downResponseToWire(await core.down())),
    Confirm: unary(async () => core.confirm()),
    ListProcesses: unary(async () => processesToWire(await core.listProcesses())),
    Watch: watch,
  };
}

/**
 * grpc-js listens through its own http2 server and drops its 'error' listener once bound; an
 * error after that (EMFILE on accept, when a local user opens connections until the daemon
 * runs out of descriptors) would be an uncaught exception and end the daemon. Its servers are
 * not public: reach them defensively and attach a listener. Returns how many were guarded
 * (test/unit/daemon/server.test.ts checks it is not 0, so a grpc-js change is noticed).
 */
export function guardListeners(server: grpc.Server, onError: (e: Error) => void): number {
  const internal = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(internal instanceof Map)) return 0;
  let n = 0;
  for (const s of internal.keys()) {
    if (s instanceof EventEmitter && !s.listeners('error').includes(onError)) {
      s.on('error', onError);
      n++;
    }
  }
  return n;
}

/** Serve `core` on a Unix socket; resolves once the socket is in place with its final mode. */
export async function startApiServer(core: DaemonCore, opts: ApiServerOptions = {}): Promise<ApiServer> {
  const socketPath = opts.socketPath ?? DEFAULT_SOCKET;
  const uid = process.geteuid?.() ?? 0;
  const gid = opts.group === undefined ? undefined : resolveGroup(opts.group, opts.groupFile);
  await preflightSocket(socketPath, { uid, gid });

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  const watches = new Set<() => void>();
  server.addService(awgService(), handlers(core, watches));

  const staging = mkdtempSync(join(dirname(socketPath), `.${basename(socketPath)}-`));
  const tmp = join(staging, 's');
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${tmp}`, grpc.ServerCredentials.createInsecure(), (e) => {
        if (e) return reject(e);
        guardListeners(server, opts.onError ?? (() => {}));
        resolve();
      }),
    );
    if (gid !== undefined) chownSync(tmp, -1, gid);
    chmodSync(tmp, gid !== undefined ? 0o660 : 0o600);
    renameSync(tmp, socketPath);
  } catch (e) {
    server.forceShutdown();
    throw toAwgError(e, 'driver');
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* renamed away */
    }
    rmdirSync(staging);
  }
  const ino = lstatSync(socketPath).ino;

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      for (const end of [...watches]) end();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      // only our own socket: a successor may already have replaced it
      const st = lstatOrUndefined(socketPath);
      if (st?.isSocket() && st.ino === ino) unlinkSync(socketPath);
    })());
  return { socketPath, close };
}
