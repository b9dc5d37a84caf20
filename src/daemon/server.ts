/**
 * The gRPC API of `awg daemon` on a Unix socket (proto/awg.proto), a thin shell over
 * DaemonCore. Two gates:
 *
 * 1. Who may connect: the socket's file mode, 0600 owned by the daemon's user (root), or
 *    0660 with a configured group. The seed system's 0666 socket let any local user drive
 *    the VPN; here any doubt about the path refuses to start:
 *    - the directory must be ours (or root's) and not writable by others (sticky excepted);
 *    - a symlink, a non-socket, a socket owned by someone else, or one whose mode grants
 *      more than we would grant, is refused (never removed: it is not ours to judge);
 *    - a socket that answers is refused (another daemon is running);
 *    - a stale socket of ours (nobody listening) is replaced.
 *    The socket is bound inside a fresh 0700 directory, given its mode and group there, and
 *    renamed into place: nobody can connect during the window where the mode is still the
 *    umask's.
 * 2. What the caller may do, per RPC (authz.ts; ApiGate, api-gate.ts): we accept connections ourselves (a
 *    net.Server) to read the peer's credentials from the kernel (the platform's
 *    CallerNatives: SO_PEERCRED + SO_PEERGROUPS on Linux, LOCAL_PEERCRED + LOCAL_PEERPID on
 *    macOS) before handing the connection to gRPC (its connection injector). gRPC shows a call only
 *    its peer address, so each accepted socket gets a private address `awg-peer:<n>` that
 *    names its credentials here; a call whose peer is unknown is refused.
 */
import { explainRequestFromWire, explainToWire } from './wire/explain.js';
import type { HostSelection } from '../config/overlay.js';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AwgError, toAwgError } from '../errors.js';
import { netSocketFd, type CallerNatives, type PeerCred } from '../native/peercred.js';
import { loadPlatform } from '../resources/registry.js';
import type { DaemonCore } from './core.js';
import { realFileView } from './trusted-path.js';
import {
  applyRequestFromWire,
  applyResponseToWire,
  diffResponseToWire,
  downResponseToWire,
  eventToWire,
  execRequestFromWire,
  limitRequestFromWire,
  limitResponseToWire,
  limitsToWire,
  observationToWire,
  processesToWire,
  statusToWire,
  topDocumentToWire,
  topRequestFromWire,
  updateListsToWire,
} from './convert.js';
import { streamCall, unary } from './wire/server-calls.js';
import type { AwgHandlers } from './wire/generated/awg/v1/Awg.js';
import { DEFAULT_SOCKET, socketAnswers } from './socket.js';
import { awgService } from './grpc-service.js';
import { describeChoice } from '../resources/flow/exec-routes.js';
import { applyAs, confirmAs, downAs, limitAs, requirePath } from './api-calls.js';
import { ApiGate, type ApiLog } from './api-gate.js';
import { createHttpApi } from './http/server.js';

export { ApiGate };
import { ROUTES } from './http/routes.js';
/** a Watch client this far behind is cut off rather than buffered without bound */
const MAX_WATCH_BACKLOG = 10_000;
/** a Top client this many documents behind is cut off (each holds every process and connection) */
const MAX_TOP_BACKLOG = 16;

export interface ApiServerOptions {
  socketPath?: string;
  /** group (name or gid) allowed to use the socket: mode 0660 instead of 0600 */
  group?: string | number;
  /** /etc/group, for resolving group names (tests) */
  groupFile?: string;
  /** one line per mutating request and per denial (the daemon's log) */
  log?: ApiLog;
  /** an error of the listening socket (EMFILE on accept, …): reported, the server keeps serving */
  onError?: (e: Error) => void;
  /** the host the daemon renders configs for (overlays): the trust check reads the same files */
  selection?: HostSelection;
  /** what the kernel says of callers (default: this host's platform's, Platform.callerNatives) */
  callers?: CallerNatives;
  /**
   * The repository is the only source of truth (`awg daemon --locked`): Apply (but a dry
   * run), Down and Confirm are refused for everyone; Diff, Status, Watch and ListProcesses
   * stay, and so does Limit (a runtime limit is not configuration: it ends with its process).
   */
  locked?: boolean;
  /** how long a new connection may stay silent before it is cut (default SNIFF_TIMEOUT_MS) */
  sniffTimeoutMs?: number;
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
  return new AwgError('permission', `refusing to serve the API on ${path}: ${why}`, {
    hint: 'remove or fix the path yourself after checking who created it, or choose another --socket',
  });
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
export async function preflightSocket(
  path: string,
  o: { uid: number; gid: number | undefined },
): Promise<void> {
  const dir = dirname(path);
  if (!lstatOrUndefined(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
  const d = statSync(dir);
  if (!d.isDirectory()) throw refuse(path, `${dir} is not a directory`);
  if (d.uid !== o.uid && d.uid !== 0) throw refuse(path, `${dir} is owned by uid ${d.uid}`);
  if (d.mode & 0o022 && !(d.mode & 0o1000))
    throw refuse(path, `${dir} is writable by others (mode ${(d.mode & 0o7777).toString(8)})`);
  const st = lstatOrUndefined(path);
  if (!st) return;
  if (st.isSymbolicLink()) throw refuse(path, 'it is a symbolic link');
  if (!st.isSocket()) throw refuse(path, 'it exists and is not a socket');
  if (st.uid !== o.uid) throw refuse(path, `the socket there is owned by uid ${st.uid}`);
  const allowed = o.gid !== undefined && st.gid === o.gid ? 0o660 : 0o600;
  if (st.mode & 0o777 & ~allowed)
    throw refuse(
      path,
      `the socket there has mode ${(st.mode & 0o777).toString(8)} (more than ${allowed.toString(8)})`,
    );
  const probe = await socketAnswers(path);
  if (probe.ok) throw refuse(path, 'a server is listening on it (is another awg daemon running?)');
  if (probe.code === 'EAGAIN' || probe.code === 'ETIMEDOUT')
    throw refuse(path, 'a server holds it without answering (is another awg daemon stopped?)');
  unlinkSync(path);
}

function handlers(core: DaemonCore, gate: ApiGate, streams: Set<() => void>): AwgHandlers {
  const watch: AwgHandlers['Watch'] = (call) => {
    const s = streamCall(call, streams, (s) => {
      s.finish();
      call.end();
    });
    gate.authorize('Watch', call).then(() => {
      if (s.done) return;
      // `after`: the held events since that id first (or a gap), then live (event-log.ts)
      s.hold(
        core.subscribe(
          (e, id) => {
            if (s.done) return;
            if (call.writableLength > MAX_WATCH_BACKLOG)
              return s.failWith({
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: `watch client fell ${MAX_WATCH_BACKLOG} events behind`,
              });
            call.write(eventToWire(e, id));
          },
          { after: call.request.after || undefined },
        ),
      );
      // headers now, so the client knows the subscription is live before the first event
      call.sendMetadata(new grpc.Metadata());
    }, s.fail);
  };
  // `awg top`: the shared monitor's documents at the caller's interval until it cancels
  const top: AwgHandlers['Top'] = (call) => {
    const s = streamCall(call, streams, (s) => {
      s.finish();
      call.end();
    });
    gate.authorize('Top', call).then(() => {
      if (s.done) return;
      const req = topRequestFromWire(call.request);
      s.hold(
        core.top(
          req,
          (d) => {
            if (s.done) return;
            if (call.writableLength > MAX_TOP_BACKLOG)
              return s.failWith({
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: `top client fell ${MAX_TOP_BACKLOG} documents behind`,
              });
            call.write(topDocumentToWire(d));
          },
          (err) => {
            if (err) return s.fail(err);
            s.finish();
            call.end();
          },
        ),
      );
      call.sendMetadata(new grpc.Metadata());
    }, s.fail);
  };
  // `awg exec` (macOS): the caller's own pid, from the kernel, routed while the call is open
  const exec: AwgHandlers['Exec'] = (call) => {
    const s = streamCall(call, streams, (s) =>
      s.fail(new AwgError('driver', 'the awg daemon is stopping: the awg exec registration ends')),
    );
    (async () => {
      const peer = await gate.authorize('Exec', call);
      const choice = execRequestFromWire(call.request);
      if (!Number.isInteger(peer.pid) || peer.pid <= 1)
        throw new AwgError(
          'permission',
          `Exec: the caller's pid is unknown (${peer.pid}), so there is no process to route`,
        );
      if (!core.routeExec)
        throw new AwgError(
          'unsupported',
          'this daemon does not route awg exec (on Linux awg exec places itself in a cgroup and needs no daemon)',
        );
      gate.audit('Exec', peer, { exec: describeChoice(choice) });
      const off = await core.routeExec(peer.pid, choice, (reason) =>
        s.fail(new AwgError('driver', reason)),
      );
      if (s.hold(off)) call.write({ pid: peer.pid });
    })().catch(s.fail);
  };
  return {
    Exec: exec,
    Apply: unary(async (w, call) => {
      const req = applyRequestFromWire(w);
      const peer = await gate.authorize('Apply', call, requirePath(req.configPath));
      return applyResponseToWire(await applyAs(core, gate, peer, req));
    }),
    Diff: unary(async (w, call) => {
      const configPath = requirePath(w.configPath);
      await gate.authorize('Diff', call, configPath);
      return diffResponseToWire(await core.diff({ configPath }));
    }),
    Status: unary(async (_w, call) => {
      await gate.authorize('Status', call);
      return statusToWire(await core.status());
    }),
    Observation: unary(async (_w, call) => {
      await gate.authorize('Observation', call);
      return observationToWire(await core.observation());
    }),
    Down: unary(async (_w, call) => {
      const peer = await gate.authorize('Down', call);
      return downResponseToWire(await downAs(core, gate, peer));
    }),
    Confirm: unary(async (_w, call) => {
      const peer = await gate.authorize('Confirm', call);
      return confirmAs(core, gate, peer);
    }),
    ListProcesses: unary(async (_w, call) => {
      await gate.authorize('ListProcesses', call);
      return processesToWire(await core.listProcesses());
    }),
    Limit: unary(async (w, call) => {
      const req = limitRequestFromWire(w);
      const peer = await gate.authorize('Limit', call);
      return limitResponseToWire(await limitAs(core, gate, peer, req));
    }),
    ListLimits: unary(async (_w, call) => {
      await gate.authorize('ListLimits', call);
      return limitsToWire(await core.listLimits());
    }),
    Explain: unary(async (w, call) => {
      const req = explainRequestFromWire(w);
      await gate.authorize('Explain', call);
      return explainToWire(await core.explain(req));
    }),
    UpdateLists: unary(async (w, call) => {
      const peer = await gate.authorize('UpdateLists', call);
      gate.audit('UpdateLists', peer, { list: w.list || 'all' });
      return updateListsToWire(await core.updateLists({ list: w.list || undefined }));
    }),
    Watch: watch,
    Top: top,
  };
}

/**
 * Accept connections on `path` ourselves: read each peer's credentials, give the socket its
 * private peer address and hand it to gRPC. A peer whose credentials cannot be read is cut.
 */
export function listenWithCredentials(
  path: string,
  gate: ApiGate,
  peer: CallerNatives['peer'],
  inject: (s: Socket) => void,
  onError: (e: Error) => void,
): Promise<NetServer> {
  let n = 0;
  const server = createNetServer((sock) => {
    sock.on('error', () => {}); // gRPC's session reports; an unhandled 'error' must never end the daemon
    let cred: PeerCred;
    try {
      cred = peer(netSocketFd(sock));
    } catch (e) {
      gate.refused(
        `API connection cut: cannot read the caller's credentials: ${(e as Error).message}`,
      );
      sock.destroy();
      return;
    }
    const id = `awg-peer:${++n}`;
    gate.peers.set(id, cred);
    sock.once('close', () => gate.peers.delete(id));
    // gRPC names a call's peer by its socket's remoteAddress (call.getPeer()); a Unix socket has none
    Object.defineProperty(sock, 'remoteAddress', { value: id, configurable: true });
    inject(sock);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      // an error after listening (EMFILE on accept, when a local user opens connections until
      // the daemon runs out of descriptors) is reported; the server keeps serving
      server.on('error', onError);
      resolve(server);
    });
  });
}

/** the HTTP/2 connection preface's first bytes: gRPC; anything else is HTTP/1.1 (http/server.ts) */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0', 'latin1');
/** a connection that sends nothing for this long is cut before either API sees it */
const SNIFF_TIMEOUT_MS = 10_000;

/**
 * One socket, two APIs: read the connection's first bytes, put them back and hand the socket
 * to gRPC (the HTTP/2 preface) or to the HTTP API (anything else).
 */
export function sniffProtocol(
  sock: Socket,
  to: (proto: 'grpc' | 'http') => void,
  timeoutMs = SNIFF_TIMEOUT_MS,
): void {
  let got = Buffer.alloc(0);
  const t = setTimeout(() => sock.destroy(), timeoutMs);
  // paused mode ('readable' + read()): data put back with unshift stays buffered for the next owner
  const onReadable = () => {
    let chunk: Buffer | null;
    while ((chunk = sock.read() as Buffer | null) !== null) got = Buffer.concat([got, chunk]);
    if (!got.length) return;
    const n = Math.min(got.length, H2_PREFACE.length);
    const h2 = got.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (h2 && got.length < H2_PREFACE.length) return; // a prefix of the preface: wait for more
    clearTimeout(t);
    sock.off('readable', onReadable);
    sock.unshift(got);
    to(h2 ? 'grpc' : 'http');
  };
  sock.on('readable', onReadable);
  sock.once('close', () => clearTimeout(t));
}

/** Serve `core` on a Unix socket; resolves once the socket is in place with its final mode. */
export async function startApiServer(
  core: DaemonCore,
  opts: ApiServerOptions = {},
): Promise<ApiServer> {
  const socketPath = opts.socketPath ?? DEFAULT_SOCKET;
  const uid = process.geteuid?.() ?? 0;
  const gid = opts.group === undefined ? undefined : resolveGroup(opts.group, opts.groupFile);
  await preflightSocket(socketPath, { uid, gid });

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  const streams = new Set<() => void>();
  const callers = opts.callers ?? (await (await loadPlatform()).callerNatives());
  const gate = new ApiGate(
    { selfUid: uid, ...(gid !== undefined ? { groupGid: gid } : {}) },
    opts.log,
    realFileView(callers.acl),
    {
      ...(opts.selection ? { selection: opts.selection } : {}),
      ...(opts.locked ? { locked: true } : {}),
    },
  );
  server.addService(awgService(), handlers(core, gate, streams));
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const http = createHttpApi(core, gate, ROUTES, streams);

  const staging = mkdtempSync(join(dirname(socketPath), `.${basename(socketPath)}-`));
  const tmp = join(staging, 's');
  let listener: NetServer;
  // connections still being sniffed, and whether close() began: a connection accepted while
  // the API closes is cut, never left unserved (a client without a deadline would wait forever)
  const sniffing = new Set<Socket>();
  let closing = false;
  try {
    listener = await listenWithCredentials(
      tmp,
      gate,
      callers.peer,
      (s) => {
        if (closing) return void s.destroy();
        sniffing.add(s);
        s.once('close', () => sniffing.delete(s));
        sniffProtocol(
          s,
          (proto) => {
            sniffing.delete(s);
            if (closing) return void s.destroy();
            if (proto === 'grpc') injector.injectConnection(s);
            else http.connection(s);
          },
          opts.sniffTimeoutMs,
        );
      },
      opts.onError ?? (() => {}),
    );
    try {
      if (gid !== undefined) chownSync(tmp, -1, gid);
      chmodSync(tmp, gid !== undefined ? 0o660 : 0o600);
      renameSync(tmp, socketPath);
    } catch (e) {
      listener.close();
      throw e;
    }
  } catch (e) {
    injector.destroy();
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
      // no new connections; net.Server would unlink the path it listened on, which is gone (renamed)
      closing = true;
      listener.close();
      for (const s of sniffing) s.destroy();
      for (const stop of [...streams]) stop();
      http.close();
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
      injector.destroy();
      // only our own socket: a successor may already have replaced it
      const st = lstatOrUndefined(socketPath);
      if (st?.isSocket() && st.ino === ino) unlinkSync(socketPath);
    })());
  return { socketPath, close };
}
