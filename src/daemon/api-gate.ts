/**
 * The authorisation of the daemon's API (docs/security.md, "The API"): who each accepted
 * connection is (its credentials, read from the kernel by server.ts's listener), what the
 * caller may do per RPC (authz.ts GROUP_POLICY, the trust check of configs), `--locked`, the
 * owner of the confirm window, and the log line of every refusal and mutation. Shared by the
 * gRPC handlers (server.ts) and the HTTP API (http/server.ts).
 */
import type { HostSelection } from '../config/overlay.js';
import { loadConfigFile } from '../config/load.js';
import { AwgError } from '../errors.js';
import type { PeerCred } from '../native/peercred.js';
import {
  accessOf,
  denied,
  describePeer,
  GROUP_POLICY,
  untrustedSecretFiles,
  type AccessOptions,
  type Rpc,
} from './authz.js';
import { checkTrustedPath, type FileView } from './trusted-path.js';

/** one line per mutating request and per denial (the daemon's log) */
export type ApiLog = (
  level: 'info' | 'warn',
  message: string,
  fields: Record<string, unknown>,
) => void;

export interface GateOptions {
  /** the host the daemon renders configs for (overlays): the trust check reads the same files */
  selection?: HostSelection;
  /** `awg daemon --locked`: Apply (but a dry run), Down and Confirm are refused for everyone */
  locked?: boolean;
}

/** why the socket group may not make an RPC it is denied */
const DENIED_WHY: Partial<Record<Rpc, string>> = {
  Down: 'Down removes every tunnel and the kill switch; only root may',
  Exec: 'Exec routes processes past the rules (awg exec --direct); only root may, as on Linux',
  UpdateLists:
    'UpdateLists fetches every list now and applies what changed; only root may (the daemon refreshes them on its own schedule)',
};

/** The authorisation state of one server: who each connection is, and who owns the confirm window. */
export class ApiGate {
  readonly peers = new Map<string, PeerCred>();
  /** the caller whose Apply opened the pending confirm window (cleared when any Apply or Down starts) */
  pendingConfirm: { uid: number; deadline: number } | undefined;

  constructor(
    readonly access: AccessOptions,
    private readonly log: ApiLog | undefined,
    /** the file system as the trust check sees it (ACLs through the platform's CallerNatives) */
    private readonly fs: FileView,
    private readonly opts: GateOptions = {},
  ) {}

  /** `--locked`: the mutations refused whoever asks */
  refuseIfLocked(rpc: Rpc, peer: PeerCred, dryRun = false): void {
    if (!this.opts.locked || dryRun) return;
    throw this.deny(
      rpc,
      peer,
      new AwgError(
        'permission',
        `${rpc} refused: this daemon is locked to its config repository (awg daemon --locked); change the repository instead`,
        {
          hint: 'commit the change to the repository the host follows; `awg diff` still shows plans',
        },
      ),
    );
  }

  /**
   * The caller of `call` if it may make this request, else a `permission` error. `configPath`:
   * the file Apply/Diff would make the daemon read (already checked to be absolute).
   */
  async authorize(rpc: Rpc, call: { getPeer(): string }, configPath?: string): Promise<PeerCred> {
    const peer = this.peers.get(call.getPeer());
    if (!peer)
      throw this.deny(
        rpc,
        undefined,
        new AwgError(
          'permission',
          `permission denied: ${rpc}: the caller's credentials are unknown`,
        ),
      );
    const access = accessOf(peer, this.access);
    if (access === 'root') return peer;
    if (access === 'other')
      throw this.deny(
        rpc,
        peer,
        denied(
          rpc,
          peer,
          this.access.groupGid === undefined
            ? 'only root may use this socket'
            : `only root and members of group ${this.access.groupGid} may use this socket`,
        ),
      );
    switch (GROUP_POLICY[rpc]) {
      case 'allowed':
        return peer;
      case 'own-process':
        // the core holds the process and decides with the caller's uid (limit-book.ts)
        return peer;
      case 'denied':
        throw this.deny(rpc, peer, denied(rpc, peer, DENIED_WHY[rpc] ?? `${rpc} is for root only`));
      case 'own-apply': {
        const p = this.pendingConfirm;
        if (p && p.uid === peer.uid && p.deadline > Date.now()) return peer;
        throw this.deny(
          rpc,
          peer,
          denied(
            rpc,
            peer,
            'the socket group may confirm only an apply it made itself, and none of this user awaits confirmation',
          ),
        );
      }
      case 'trusted-files': {
        const path = configPath ?? '';
        try {
          checkTrustedPath('config', path, { reader: peer, fs: this.fs });
        } catch (e) {
          throw this.deny(rpc, peer, denied(rpc, peer, (e as Error).message));
        }
        const loaded = await loadConfigFile(
          path,
          this.opts.selection ? { selection: this.opts.selection } : {},
        );
        // the overlay files the config applies are read as root too: the same rule as the config
        for (const overlay of loaded.sources.slice(1)) {
          try {
            checkTrustedPath('config overlay', overlay, { reader: peer, fs: this.fs });
          } catch (e) {
            throw this.deny(rpc, peer, denied(rpc, peer, (e as Error).message));
          }
        }
        // an invalid config: the core reports its issues (the caller may read the file); no secret is read
        if (loaded.config) {
          const issues = untrustedSecretFiles(loaded.config, path, {
            fs: this.fs,
            ...(loaded.positions ? { positions: loaded.positions } : {}),
          });
          if (issues.length)
            throw this.deny(
              rpc,
              peer,
              denied(
                rpc,
                peer,
                `the config names secret files that root alone does not control: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
                { issues },
              ),
            );
        }
        return peer;
      }
    }
  }

  private deny(rpc: Rpc, peer: PeerCred | undefined, e: AwgError): AwgError {
    this.log?.('warn', e.message, {
      rpc,
      ...(peer ? { caller: { uid: peer.uid, gid: peer.gid, pid: peer.pid } } : {}),
    });
    return e;
  }

  /** the caller may do everything (root, or the daemon's own uid) */
  isRoot(peer: PeerCred): boolean {
    return accessOf(peer, this.access) === 'root';
  }

  refused(message: string): void {
    this.log?.('warn', message, {});
  }

  audit(rpc: Rpc, peer: PeerCred, fields: Record<string, unknown> = {}): void {
    this.log?.('info', `API ${rpc} by ${describePeer(peer)}`, {
      rpc,
      caller: { uid: peer.uid, gid: peer.gid, pid: peer.pid },
      ...fields,
    });
  }
}
