/** Transport keypairs and the previous/current/next rotation (wireguard-go `keypair.go`). */
import type { KeyObject } from 'node:crypto';
import { ReplayFilter } from '../noise/replay.js';

export interface Keypair {
  readonly sendKey: KeyObject;
  readonly recvKey: KeyObject;
  sendNonce: number;
  readonly replay: ReplayFilter;
  readonly isInitiator: boolean;
  /** clock.now() at derivation */
  readonly created: number;
  readonly localIndex: number;
  readonly remoteIndex: number;
}

export interface Keypairs {
  previous: Keypair | null;
  current: Keypair | null;
  next: Keypair | null;
}

export function emptyKeypairs(): Keypairs {
  return { previous: null, current: null, next: null };
}
