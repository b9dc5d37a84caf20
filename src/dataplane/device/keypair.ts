/** Transport keypairs and the previous/current/next rotation (wireguard-go `keypair.go`). */
import { ReplayFilter } from '../noise/replay.js';

export interface Keypair {
  /** raw keys: node's cipher setup is faster from a Buffer than from a KeyObject (measured) */
  readonly sendKey: Uint8Array;
  readonly recvKey: Uint8Array;
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
