/**
 * Who may do what through the daemon's API (docs/security.md, "The API"). The caller is
 * known from the kernel (the platform's CallerNatives: SO_PEERCRED/SO_PEERGROUPS on Linux,
 * LOCAL_PEERCRED on macOS, of the accepted Unix socket), never from anything it sends:
 *
 * - root (uid 0, or the daemon's own uid): everything;
 * - a member of `awg daemon --socket-group` (its gid or one of its groups): what reads state
 *   (Status, Observation, Watch, ListProcesses, Top, ListLimits, Explain); Apply and Diff only of a config it may
 *   read itself whose lookup, and every `{file:}` secret's, only root controls
 *   (trusted-path.ts); Confirm only of a pending apply it made; Limit only of its own
 *   processes (their real and effective uid are the caller's), never of one root limited
 *   (limit-book.ts decides, with the process in hand); never Down (it would open the kill
 *   switch); never Exec (`awg exec --direct` would take the member's processes past the rules
 *   and the default tunnel; on Linux awg exec needs root too); never UpdateLists (a fetch of
 *   every list now and the run that applies it: the daemon's own schedule is the member's);
 * - anyone else (who reached the socket some other way, e.g. a passed fd): nothing.
 *
 * `{env:}` secrets are never resolved for an API request, whoever asks (config-follower.ts).
 */
import { AwgError, type Issue } from '../errors.js';
import type { Config } from '../config/schema.js';
import { secretFilePath, secretRefs } from '../config/secrets.js';
import { formatPath, lineCol } from '../config/positions.js';
import type { MergedPositions } from '../config/overlay.js';
import type { PeerCred } from '../native/peercred.js';
import { checkTrustedPath, type FileView } from './trusted-path.js';

export type Rpc =
  | 'Apply'
  | 'Diff'
  | 'Status'
  | 'Observation'
  | 'Watch'
  | 'ListProcesses'
  | 'Top'
  | 'Confirm'
  | 'Down'
  | 'Exec'
  | 'Limit'
  | 'ListLimits'
  | 'Explain'
  | 'UpdateLists';
export type Access = 'root' | 'group' | 'other';

/**
 * What a socket-group member may do, per RPC (root may do everything, others nothing):
 * `allowed`; `trusted-files`: the config and its secret files must pass checkTrustedPath (the
 * config also readable by the caller); `own-apply`: only a confirm window its own Apply
 * opened; `own-process`: only processes of its own uid, and no limit root set (the core checks,
 * given the caller); `denied`.
 */
export type GroupRule = 'allowed' | 'trusted-files' | 'own-apply' | 'own-process' | 'denied';

export const GROUP_POLICY: Readonly<Record<Rpc, GroupRule>> = {
  Status: 'allowed',
  // specs, facts and claims, no secrets (fingerprints keyed by the host's own key)
  Observation: 'allowed',
  Watch: 'allowed',
  ListProcesses: 'allowed',
  Top: 'allowed',
  ListLimits: 'allowed',
  // like ListProcesses: every process's executable, uid and route
  Explain: 'allowed',
  Diff: 'trusted-files',
  Apply: 'trusted-files',
  Confirm: 'own-apply',
  Limit: 'own-process',
  Down: 'denied',
  Exec: 'denied',
  // fetches lists from the network now and applies what changed: an operator's action
  UpdateLists: 'denied',
};

/** how docs/security.md, docs/api.md and schema/api.openapi.json say each GroupRule */
export const GROUP_RULE_TEXT: Readonly<Record<GroupRule, string>> = {
  allowed: 'yes',
  'trusted-files': 'trusted config only',
  'own-apply': 'its own Apply only',
  'own-process': 'its own processes only',
  denied: 'no',
};

/**
 * What `awg daemon --locked` refuses whoever asks (ApiGate.refuseIfLocked, called by
 * api-calls.ts): the value says which requests of the RPC.
 */
export const LOCKED_RPCS: Readonly<Partial<Record<Rpc, string>>> = {
  Apply: 'all but a dry run',
  Confirm: 'all',
  Down: 'all',
};

export interface AccessOptions {
  /** the daemon's effective uid (root in production): a peer with it may do what we may */
  selfUid: number;
  /** the `--socket-group` gid, if any */
  groupGid?: number;
}

export function accessOf(peer: PeerCred, o: AccessOptions): Access {
  if (peer.uid === 0 || peer.uid === o.selfUid) return 'root';
  if (o.groupGid !== undefined && (peer.gid === o.groupGid || peer.groups.includes(o.groupGid)))
    return 'group';
  return 'other';
}

export function describePeer(peer: PeerCred): string {
  return `uid ${peer.uid} (gid ${peer.gid}, pid ${peer.pid})`;
}

export function denied(
  rpc: Rpc,
  peer: PeerCred,
  why: string,
  opts: { issues?: Issue[] } = {},
): AwgError {
  return new AwgError('permission', `permission denied: ${rpc} for ${describePeer(peer)}: ${why}`, {
    ...(opts.issues ? { issues: opts.issues } : {}),
    hint: 'run it as root (sudo); docs/security.md lists what the socket group may do',
  });
}

/**
 * Every `{file:}` secret of `config` (read from `configFile`) that fails checkTrustedPath, as
 * located issues; empty when all pass.
 */
export function untrustedSecretFiles(
  config: Config,
  configFile: string,
  o: { positions?: MergedPositions; fs: FileView; owner?: number },
): Issue[] {
  const issues: Issue[] = [];
  for (const ref of secretRefs(config)) {
    if (typeof ref.secret === 'string' || 'env' in ref.secret) continue;
    const path = formatPath(ref.path);
    // relative to the file that names the secret (an overlay's own directory), as checkSecrets reads it
    const pos = o.positions?.locate(ref.path);
    const from = pos?.file ?? configFile;
    try {
      checkTrustedPath(
        'age' in ref.secret ? 'age secret file' : 'secret file',
        secretFilePath('age' in ref.secret ? ref.secret.age : ref.secret.file, from),
        { fs: o.fs, ...(o.owner !== undefined ? { owner: o.owner } : {}) },
      );
    } catch (e) {
      issues.push({
        file: from,
        ...lineCol(pos),
        path,
        severity: 'error',
        message: (e as Error).message,
      });
    }
  }
  return issues;
}
