/**
 * Whether other processes hold this thread back: the thread's run delay (time runnable but
 * waiting for a CPU, /proc's schedstat) against the CPU time it got, over windows of WINDOW_MS.
 *
 * What it decides (AWG_UDP_SEND_THREAD=auto, opt-in, conn/native-udp.ts): the pool sender's
 * handoff to libuv's pool pays where the engine's one thread gets one CPU's share while busy
 * processes in other autogroups hold the rest, and costs where the cores are ours to share (two
 * engines on two vCPUs). On a two-vCPU machine, in half-second windows, the engine on a quiet
 * machine waits a small fraction of what it runs; under busy autogroups it waits longer than it
 * runs while it sends; with two engines of ours `auto` sent what off does (the pool sender
 * always on sent less). But it cannot tell busy processes that have nothing to do with us from
 * the ones our own traffic runs through: beside the daemon bench's three peer engines on the
 * same two vCPUs it waited about as long as it ran, and there the pool sender cost throughput
 * (so `auto` is opt-in). A thread that waits at least as long as it runs is starved; it is calm
 * again after CALM_WINDOWS windows in a row that waited less than half as long as they ran.
 * Measurements: bench/RESULTS.md, section "Deciding at run time".
 */
import { type Schedstat, threadSchedstat } from '../native/sched.js';

/** Length of a window (ms); the verdict changes at most once per window. */
export const WINDOW_MS = 250;
/** run delay / CPU time at or above which the thread is starved */
export const STARVED_RATIO = 1;
/** below which a window is calm */
export const CALM_RATIO = 0.5;
/** calm windows in a row that end a starved verdict */
export const CALM_WINDOWS = 8;
/**
 * Time runnable in a window (CPU time plus run delay, share of it) below which it says nothing:
 * the thread was mostly idle. Run delay counts: a thread that wants the CPU all window long and
 * gets 2 % of it is starved, not idle (a loaded machine showed such windows).
 */
const MIN_BUSY = 0.1;

export class StarvationGauge {
  starved = false;
  /** windows judged, and the verdict's changes (stats, tests) */
  windows = 0;
  changes = 0;
  private last: Schedstat | null = null;
  private lastAt = -Infinity;
  private calm = 0;
  private dead = false;

  constructor(private readonly read: () => Schedstat | null = threadSchedstat) {}

  /** The verdict at `now` (ms), taking a new reading once a window has passed. */
  check(now: number): boolean {
    if (this.dead || now - this.lastAt < WINDOW_MS) return this.starved;
    const s = this.read();
    if (!s) {
      // no schedstat here: never starved (the sends stay on the thread)
      this.dead = true;
      return (this.starved = false);
    }
    const prev = this.last;
    const span = now - this.lastAt;
    this.last = s;
    this.lastAt = now;
    // the first reading, or one after a pause (nothing sent for a while): a new baseline
    if (!prev || span > 2 * WINDOW_MS) return this.starved;
    const run = s.run - prev.run;
    const wait = s.wait - prev.wait;
    if (wait < 0 || run + wait < MIN_BUSY * span * 1e6) return this.starved;
    this.windows++;
    const ratio = wait / run;
    if (!this.starved) {
      if (ratio >= STARVED_RATIO) {
        this.starved = true;
        this.calm = 0;
        this.changes++;
      }
    } else if (ratio < CALM_RATIO) {
      if (++this.calm >= CALM_WINDOWS) {
        this.starved = false;
        this.changes++;
      }
    } else this.calm = 0;
    return this.starved;
  }
}

let shared: StarvationGauge | null = null;

/** The calling thread's gauge (module state is per thread: every bind on it shares one). */
export function threadGauge(): StarvationGauge {
  return (shared ??= new StarvationGauge());
}
