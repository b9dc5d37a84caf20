/**
 * The handshake boost: while a packet waits for a handshake we initiated, the engine's thread
 * runs SCHED_FIFO at priority 1, and returns to SCHED_OTHER when the peer's first data packet
 * on the new session has arrived (or after BOOST_MAX_MS).
 *
 * Why: the first packet after a peer reset (or after a session expired) waits for our
 * initiation, the peer's response and our consuming it. That path costs the engine's thread
 * milliseconds of CPU (JavaScript that runs once per handshake, in V8's baseline tier), in
 * three bursts close together. On a loaded machine CFS/EEVDF then holds a thread that used
 * more than its share back behind the busy ones, for whole ticks, while wireguard-go's
 * handshake, a fraction of the CPU, never crosses that line. Nice values did not help, nor
 * does the engine's short slice (below) with a burst this long; SCHED_FIFO does, as for the
 * placer (docs/platform-linux.md). Measurements: bench/RESULTS.md, section "The handshake
 * boost".
 *
 * Bounds: only while a handshake we started has data packets waiting on it (not for rekeys
 * with a usable session, not for keepalives, not as responder: a remote party cannot start a
 * window); each window ends after BOOST_MAX_MS at the latest, and initiations are themselves
 * rate-limited per peer (REKEY_TIMEOUT). SCHED_RESET_ON_FORK keeps processes and threads
 * started meanwhile off real-time. Only the calling (main) thread changes: the crypto pool's
 * threads stay SCHED_OTHER. Refused (no CAP_SYS_NICE, RLIMIT_RTPRIO 0), or the thread already
 * runs another policy (someone ran us under chrt; asked at most every POLICY_RECHECK_MS): the
 * boost stays off and says why.
 * AWG_HANDSHAKE_BOOST=0 turns it off (diagnosis); off Linux there is none.
 */
import {
  autogroupNice,
  currentPolicy,
  errnoText,
  SCHED_OTHER,
  sessionOf,
  setAutogroupNice,
  setFifo,
  setOther,
  setOtherSlice,
} from '../native/sched.js';
import { E } from '../native/libc.js';

/** A window's upper bound: a handshake and the first answer over paths of up to ~200 ms RTT. */
export const BOOST_MAX_MS = 250;

/**
 * A window asks for the thread's policy (a syscall) only when it was last found SCHED_OTHER
 * this long ago: the first packets after a peer reset, which come in quick succession, pay
 * for two sched calls instead of three, and a policy set from outside (chrt -p) is still
 * left alone from the first window that starts this long after it.
 */
export const POLICY_RECHECK_MS = 10_000;

/** What switches the calling thread's policy: 0 or -errno (native/sched.ts; tests pass a fake). */
export interface SchedControl {
  fifo(): number;
  other(): number;
  /** the thread's policy now (SCHED_OTHER 0), or -errno */
  policy(): number;
}

export interface BoostState {
  /** false: refused or not applicable (see `reason`) */
  enabled: boolean;
  reason?: string;
  /** the thread runs SCHED_FIFO now */
  active: boolean;
  windows: number;
  /** windows that ended at BOOST_MAX_MS, not with the peer's first data packet */
  expired: number;
  /** milliseconds spent boosted, closed windows */
  ms: number;
}

export class HandshakeBoost {
  /** key (a peer) → when its window ends (performance.now() ms) */
  private readonly waiting = new Map<object, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private since = 0;
  /** when the thread's policy was last found SCHED_OTHER (POLICY_RECHECK_MS) */
  private policyAt = -Infinity;
  private st: BoostState = { enabled: true, active: false, windows: 0, expired: 0, ms: 0 };

  constructor(
    private readonly sched: SchedControl,
    private readonly maxMs = BOOST_MAX_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  state(): BoostState {
    return { ...this.st };
  }

  /** A handshake for `key` has data waiting on it: boost until `leave(key)` or the bound. */
  enter(key: object): void {
    if (!this.st.enabled) return;
    const t = this.now();
    this.waiting.set(key, t + this.maxMs);
    if (!this.st.active) {
      if (t - this.policyAt >= POLICY_RECHECK_MS) {
        const policy = this.sched.policy();
        if (policy !== SCHED_OTHER) {
          this.disable(
            policy < 0
              ? `sched_getscheduler: ${errnoText(policy)}`
              : `the thread runs scheduling policy ${policy}, not SCHED_OTHER: left alone`,
          );
          return;
        }
        this.policyAt = t;
      }
      const r = this.sched.fifo();
      if (r < 0) {
        this.disable(`sched_setscheduler(SCHED_FIFO, 1) refused: ${errnoText(r)}`);
        return;
      }
      this.st.active = true;
      this.st.windows++;
      this.since = t;
    }
    this.arm(t);
  }

  /** `key`'s first data packet arrived (or its handshake is over): unboost when none waits. */
  leave(key: object): void {
    if (this.waiting.delete(key) && this.waiting.size === 0) this.drop();
  }

  private disable(reason: string): void {
    this.waiting.clear();
    this.st.enabled = false;
    this.st.reason = reason;
  }

  private drop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.st.active) return;
    this.st.active = false;
    this.st.ms += this.now() - this.since;
    // failing to return to SCHED_OTHER would leave the thread real-time: stop boosting then
    const r = this.sched.other();
    if (r < 0) this.disable(`sched_setscheduler(SCHED_OTHER) failed: ${errnoText(r)}`);
  }

  private arm(t: number): void {
    let next = Infinity;
    for (const d of this.waiting.values()) next = Math.min(next, d);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.expire(), Math.max(0, next - t) + 1);
    this.timer.unref?.();
  }

  private expire(): void {
    this.timer = undefined;
    const t = this.now();
    for (const [k, d] of this.waiting) {
      if (d <= t) {
        this.waiting.delete(k);
        this.st.expired++;
      }
    }
    if (this.waiting.size === 0) this.drop();
    else this.arm(t);
  }
}

/**
 * The engine thread's EEVDF slice (µs): short, so that the thread, which mostly sleeps and
 * wakes for a little work per packet, preempts a CPU-bound task when it wakes instead of
 * waiting for that task's tick (4 ms at 250 Hz). Not a larger share of the CPU: the same
 * weight, earlier deadlines. Under busy loops it brought the ping's RTT and the first ping
 * much closer to wireguard-go's (measured with the boost, in the section named at the top of
 * this file). Linux 6.12+; older kernels ignore it. AWG_ENGINE_SLICE_US sets another
 * (100–100000), 0 leaves the default.
 */
export const ENGINE_SLICE_US = 100;

export function engineSliceUs(): number {
  const v = process.env.AWG_ENGINE_SLICE_US;
  if (v === undefined || v === '') return ENGINE_SLICE_US;
  const n = Number(v);
  return Number.isInteger(n) && n >= 100 && n <= 100_000 ? n : 0;
}

let sliced: { us: number; result: number } | undefined;

/**
 * Gives the calling thread (an engine's: the main thread) its slice, once per process; the
 * boost restores it when a window ends. Returns what was asked and the call's result
 * (0, or -errno), or null off Linux and with the slice off.
 */
export function applyEngineSlice(): { us: number; result: number } | null {
  if (sliced) return sliced;
  const us = process.platform === 'linux' ? engineSliceUs() : 0;
  if (us === 0) return null;
  sliced = { us, result: setOtherSlice(us) };
  return sliced;
}

/**
 * The nice value of the engine's autogroup, and so its weight against other sessions (nice −10:
 * 9548 against 1024, ≈ 9×; a one-thread engine can still take at most one core). Where the
 * kernel groups tasks by session (CONFIG_SCHED_AUTOGROUP,
 * on when no cgroup CPU controller holds the process), every session gets an equal share of the
 * CPUs, however many threads it runs: with four busy processes in sessions of their own on two
 * cores the one-thread engine got about a third of a core and sent clearly less than
 * wireguard-go, whose threads that sleep and wake on both cores got more than their share; at
 * nice −5 about as much. Against amneziawg-go, whose goroutines run on both cores, −10 did
 * better than −5 (−15 starved the benchmark's own peer and did no better). Kernel
 * WireGuard's encryption runs in softirq and kernel workers, ahead of every session; the
 * engine's CPU goes only to packets the machine's own programs send and receive. Only a
 * session leader's own group (a detached `awg engine`, a daemon that systemd started: its
 * whole session, the placer and the tools it runs included) and only a group nobody has set
 * (nice 0) is changed. Needs CAP_SYS_NICE. AWG_ENGINE_NICE sets another value (−20 to 19), 0
 * leaves it.
 */
export const ENGINE_NICE = -10;

export function engineNice(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.AWG_ENGINE_NICE;
  if (v === undefined || v === '') return ENGINE_NICE;
  const n = Number(v);
  return Number.isInteger(n) && n >= -20 && n <= 19 ? n : 0;
}

export interface AutogroupControl {
  /** the session this process belongs to, or null */
  session(): number | null;
  /** the autogroup's nice, or null where there are no autogroups */
  nice(): number | null;
  /** sets it: 0 or -errno */
  setNice(n: number): number;
}

const realAutogroup: AutogroupControl = {
  session: () => sessionOf(),
  nice: () => autogroupNice(),
  setNice: (n) => setAutogroupNice(n),
};

export type EngineWeight =
  | { nice: number; result: number; retrying?: true }
  | { skipped: 'off' | 'not a session leader' | 'no autogroups' | 'already set'; nice?: number };

let weighted: EngineWeight | undefined;

/**
 * The kernel takes one autogroup change per 100 ms from a process without CAP_SYS_ADMIN
 * (EAGAIN, kernel/sched/autogroup.c): engines started together by someone without it try
 * once more after this long.
 */
export const AUTOGROUP_RETRY_MS = 150;

/**
 * Sets the engine's autogroup nice (engineNice()) once per process, where that group is the
 * engine's own: what was done, or why nothing was.
 */
export function applyEngineWeight(
  ctl: AutogroupControl = realAutogroup,
  want = process.platform === 'linux' ? engineNice() : 0,
  pid = process.pid,
  /** called with the second try's result when the first met EAGAIN (AUTOGROUP_RETRY_MS later) */
  retried?: (nice: number, result: number) => void,
): EngineWeight {
  if (weighted && ctl === realAutogroup) return weighted;
  const done = (w: EngineWeight): EngineWeight => (ctl === realAutogroup ? (weighted = w) : w);
  if (want === 0) return done({ skipped: 'off' });
  if (ctl.session() !== pid) return done({ skipped: 'not a session leader' });
  const now = ctl.nice();
  if (now === null) return done({ skipped: 'no autogroups' });
  if (now !== 0) return done({ skipped: 'already set', nice: now });
  const result = ctl.setNice(want);
  if (result !== -E.EAGAIN || !retried) return done({ nice: want, result });
  setTimeout(() => {
    const again = ctl.setNice(want);
    done({ nice: want, result: again });
    retried(want, again);
  }, AUTOGROUP_RETRY_MS).unref();
  return done({ nice: want, result, retrying: true });
}

let shared: HandshakeBoost | null | undefined;

/**
 * The process's boost for its engines' devices (main thread only): null off Linux and with
 * AWG_HANDSHAKE_BOOST=0. A window's end returns the thread to SCHED_OTHER with the engine's
 * slice when it has one.
 */
export function sharedBoost(): HandshakeBoost | null {
  if (shared !== undefined) return shared;
  const other = () => (sliced && sliced.result === 0 ? setOtherSlice(sliced.us) : setOther());
  shared =
    process.platform === 'linux' && process.env.AWG_HANDSHAKE_BOOST !== '0'
      ? new HandshakeBoost({ fifo: () => setFifo(1), other, policy: currentPolicy })
      : null;
  return shared;
}
