/**
 * What each call of the daemon's API does once its caller is authorised, shared by the gRPC
 * handlers (server.ts) and the HTTP routes (http/api-routes.ts) so the two cannot drift: the
 * `--locked` refusals, the audit line, the confirm window's owner and the Limit caller. Each
 * takes the caller as ApiGate.authorize returned it for the RPC named in the function;
 * `authorizeConfig` is that authorisation for the calls that make the daemon read a config.
 */
import { isAbsolute } from 'node:path';
import { AwgError } from '../errors.js';
import type { PeerCred } from '../native/peercred.js';
import type {
  ApplyRequest,
  ApplyResponse,
  ConfirmResponse,
  DaemonCore,
  DownResponse,
  LimitRequest,
  LimitResponse,
} from './core.js';
import type { ApiGate } from './api-gate.js';

/** the config path of an Apply or Diff request: present and absolute, else invalid-config */
export function requirePath(p: string | undefined): string {
  if (!p) throw new AwgError('invalid-config', 'config path missing');
  if (!isAbsolute(p)) throw new AwgError('invalid-config', `config path must be absolute: ${p}`);
  return p;
}

/** Apply: refused by --locked unless a dry run; a real one takes over the confirm window */
export async function applyAs(
  core: DaemonCore,
  gate: ApiGate,
  peer: PeerCred,
  req: ApplyRequest,
): Promise<ApplyResponse> {
  gate.refuseIfLocked('Apply', peer, req.dryRun);
  gate.audit('Apply', peer, {
    config: req.configPath,
    ...(req.dryRun ? { dryRun: true } : {}),
  });
  if (!req.dryRun) gate.pendingConfirm = undefined;
  const r = await core.apply(req);
  if (!req.dryRun && r.confirmDeadline)
    gate.pendingConfirm = { uid: peer.uid, deadline: Date.parse(r.confirmDeadline) };
  return r;
}

export async function downAs(
  core: DaemonCore,
  gate: ApiGate,
  peer: PeerCred,
): Promise<DownResponse> {
  gate.refuseIfLocked('Down', peer);
  gate.audit('Down', peer);
  gate.pendingConfirm = undefined;
  return core.down();
}

export async function confirmAs(
  core: DaemonCore,
  gate: ApiGate,
  peer: PeerCred,
): Promise<ConfirmResponse> {
  gate.refuseIfLocked('Confirm', peer);
  gate.audit('Confirm', peer);
  const r = await core.confirm();
  if (r.confirmed) gate.pendingConfirm = undefined;
  return r;
}

/**
 * Limit: not refused by --locked (a runtime limit is not configuration: it ends with its
 * process); the core decides whose processes the caller may limit.
 */
export function limitAs(
  core: DaemonCore,
  gate: ApiGate,
  peer: PeerCred,
  req: LimitRequest,
): Promise<LimitResponse> {
  gate.audit('Limit', peer, {
    pid: req.pid,
    ...(req.clear
      ? { clear: true }
      : {
          ...(req.upload !== undefined ? { upload: req.upload } : {}),
          ...(req.download !== undefined ? { download: req.download } : {}),
        }),
  });
  return core.limit(req, { uid: peer.uid, root: gate.isRoot(peer) });
}
