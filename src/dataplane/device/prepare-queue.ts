/**
 * When a device prepares its peers' next initiations (device/handshake.ts
 * prepareNextInitiation): on a later turn of the event loop, never in the middle of a packet
 * batch, at most PREPARE_BATCH peers per turn.
 *
 * - After a preparation was used (an initiation sent), the next one PREPARE_DELAY_MS later:
 *   the handshake in flight gets the CPU first.
 * - For a peer that starts (configured, the device up, a new private key) on the next turn:
 *   nothing is in flight, and a packet sent right after a configuration change (a peer
 *   re-added, `awg apply`) then finds its initiation ready instead of building it on its own
 *   path. Measurements: bench/RESULTS.md, section "The first ping of 3.1, second round".
 */
import { systemClock, type TimerHandle } from '../clock.js';
import type { Peer } from './peer.js';

export const PREPARE_DELAY_MS = 20;
export const PREPARE_BATCH = 16;

export class PrepareQueue {
  private readonly peers = new Set<Peer>();
  /** on the system clock's timers (one Node timer for all, timer-queue.ts) */
  private timer: TimerHandle | null = null;
  private immediate: NodeJS.Immediate | null = null;

  /** `prepare` runs for each peer in turn (it checks that the peer still runs) */
  constructor(private readonly prepare: (p: Peer) => void) {}

  /** Prepares `p` PREPARE_DELAY_MS from now, or with `next` on the next turn. */
  add(p: Peer, next: boolean): void {
    this.peers.add(p);
    if (next)
      this.immediate ??= setImmediate(() => {
        this.immediate = null;
        this.run();
      }).unref();
    else this.later(PREPARE_DELAY_MS);
  }

  delete(p: Peer): void {
    this.peers.delete(p);
  }

  clear(): void {
    if (this.timer) systemClock.clearTimer(this.timer);
    this.timer = null;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
    this.peers.clear();
  }

  private later(ms: number): void {
    this.timer ??= systemClock.setTimer(() => {
      this.timer = null;
      this.run();
    }, ms);
  }

  private run(): void {
    let n = 0;
    for (const p of this.peers) {
      if (n++ === PREPARE_BATCH) break;
      this.peers.delete(p);
      this.prepare(p);
    }
    if (this.peers.size) this.later(0);
  }
}
