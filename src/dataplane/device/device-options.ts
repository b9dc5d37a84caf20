/**
 * What a Device is made with (DeviceOptions), the events it emits and its states; device.ts
 * re-exports them with the class.
 */
import type { RandomSource } from '../awg/random.js';
import type { HandshakeBoost } from '../boost.js';
import type { Clock } from '../clock.js';
import type { Bind, Endpoint } from '../conn/bind.js';
import type { CryptoPool } from '../crypto/pool.js';
import type { TunDevice } from '../tun/tun.js';
import type { Resolver } from './resolver.js';

export type DeviceState = 'down' | 'up' | 'closed';

export interface DeviceOptions {
  tun: TunDevice;
  bind: Bind;
  clock?: Clock;
  random?: RandomSource;
  resolver?: Resolver;
  /** handshake messages per second that put the device under load (cookie replies) */
  underLoadThreshold?: number;
  /**
   * Prepare each peer's next handshake initiation while idle (default: on unless
   * AWG_HANDSHAKE_PREPARE=0, the off switch for diagnosis); off, it is built when needed.
   */
  prepareInitiations?: boolean;
  /**
   * Seal and open transport messages on the crypto pool's threads (crypto/pool.ts); default:
   * the process's pool (AWG_CRYPTO_THREADS), null: inline. Needs the reused slabs
   * (AWG_BUFFER_REUSE=0 turns it off).
   */
  cryptoPool?: CryptoPool | null;
  /**
   * The send and receive slabs (128 and 256 KiB) to use instead of the device's own: for
   * devices that never run at once (the warm-up's throw-away pairs, which otherwise left their
   * freed slabs resident in the allocator's heap: warmup.ts).
   */
  slabs?: { tx: Buffer; rx: Buffer };
  /**
   * After this long without a packet either way the device gives the pages of its buffers back
   * to the kernel (the bind's receive block, the TUN's slab, its own slabs: buffers.ts); 0 never.
   * Default IDLE_RELEASE_MS, 0 with AWG_IDLE_RELEASE=0 (diagnosis).
   */
  idleReleaseMs?: number;
  /**
   * Run the thread SCHED_FIFO while data waits on a handshake we started (boost.ts); default
   * none: engines pass the process's (`sharedBoost()`), tests and the warm-up do not.
   */
  boost?: HandshakeBoost | null;
  /** test hooks: lower message limits to exercise rekey-after-messages */
  rekeyAfterMessages?: number;
  rejectAfterMessages?: number;
  log?: ((level: 'debug' | 'info' | 'warn', message: string) => void) | undefined;
}

export interface DeviceEvents {
  state: [DeviceState];
  /**
   * a session was established (initiator: response consumed; responder: key confirmed);
   * emitted HANDSHAKE_EVENT_DELAY_MS later, unless the device was closed meanwhile
   */
  handshake: [{ publicKey: Uint8Array; endpoint: Endpoint | null; initiator: boolean }];
  /** retransmits exhausted; staged packets dropped */
  'handshake-failed': [{ publicKey: Uint8Array }];
  /** an authenticated packet arrived from a new address (roaming) or a hostname re-resolved */
  endpoint: [{ publicKey: Uint8Array; endpoint: Endpoint }];
}
