/**
 * The timer queue under the system clock (src/dataplane/timer-queue.ts), on a scripted clock
 * and a fake underlying timer: deadlines in order (equal ones in the order set), never early,
 * cancelled ones never run, the one underlying timer moved only for an earlier deadline, and
 * callbacks that set, cancel or throw.
 */
import { describe, expect, it } from 'vitest';
import { TimerQueue, type Scheduler } from '../../../src/dataplane/timer-queue.js';

function rig() {
  let t = 1000;
  const armed: { fn: () => void; ms: number; at: number; live: boolean }[] = [];
  const sched: Scheduler = {
    set(fn, ms) {
      const a = { fn, ms, at: t + ms, live: true };
      armed.push(a);
      return a;
    },
    clear(h) {
      (h as { live: boolean }).live = false;
    },
  };
  const q = new TimerQueue(() => t, sched);
  const live = () => armed.filter((a) => a.live);
  /** moves the clock to `to`, firing the underlying timer whenever it is due */
  const advance = (to: number) => {
    for (;;) {
      const next = live().sort((a, b) => a.at - b.at)[0];
      if (!next || next.at > to) break;
      t = Math.max(t, next.at);
      next.live = false;
      next.fn();
    }
    t = to;
  };
  return { q, armed, live, advance, now: () => t, setNow: (v: number) => (t = v) };
}

describe('the timer queue', () => {
  it('runs deadlines in order, equal ones in the order set, none early, each once', () => {
    const { q, advance } = rig();
    const ran: string[] = [];
    q.add(() => ran.push('c@30'), 30);
    q.add(() => ran.push('a@10'), 10);
    q.add(() => ran.push('b1@20'), 20);
    q.add(() => ran.push('b2@20'), 20);
    q.add(() => ran.push('f@0.2'), 0.2); // rounded up to 1 ms, never early
    advance(1000);
    expect(ran).toEqual([]);
    advance(1001);
    expect(ran).toEqual(['f@0.2']);
    advance(1019);
    expect(ran).toEqual(['f@0.2', 'a@10']);
    advance(1020);
    expect(ran).toEqual(['f@0.2', 'a@10', 'b1@20', 'b2@20']);
    advance(2000);
    expect(ran).toEqual(['f@0.2', 'a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(q.size).toBe(0);
  });

  it('moves the underlying timer only for an earlier deadline, and lets it go when empty', () => {
    const { q, armed, live } = rig();
    const a = q.add(() => {}, 5000);
    expect(armed.map((x) => x.ms)).toEqual([5000]);
    q.add(() => {}, 10_000);
    q.add(() => {}, 540_000);
    expect(armed.length).toBe(1); // later ones: a heap insertion only
    const b = q.add(() => {}, 50);
    expect(armed.map((x) => x.ms)).toEqual([5000, 50]);
    expect(live().map((x) => x.ms)).toEqual([50]);
    q.cancel(b);
    q.cancel(a);
    expect(live().length).toBe(1); // still armed: wakes to nothing due and re-arms
    const c = rig();
    const only = c.q.add(() => {}, 10);
    c.q.cancel(only);
    expect(c.live().length).toBe(0);
  });

  it('never runs a cancelled timer; cancelling twice, or after it ran, is harmless', () => {
    const { q, advance } = rig();
    const ran: number[] = [];
    const hs = [10, 20, 30, 40, 50].map((ms) => q.add(() => ran.push(ms), ms));
    q.cancel(hs[2]!);
    q.cancel(hs[0]!);
    q.cancel(hs[0]!);
    advance(1020);
    q.cancel(hs[1]!); // already ran
    advance(2000);
    expect(ran).toEqual([20, 40, 50]);
  });

  it('an early wake-up runs nothing and re-arms for the rest', () => {
    const { q, live, setNow } = rig();
    const ran: number[] = [];
    q.add(() => ran.push(1), 10);
    const first = live()[0]!;
    setNow(1009.5); // the underlying timer came half a millisecond early
    first.live = false;
    first.fn();
    expect(ran).toEqual([]);
    expect(live().map((x) => x.ms)).toEqual([1]);
  });

  it('callbacks may set and cancel timers; one that throws does not take the others with it', () => {
    const { q, advance, live } = rig();
    const ran: string[] = [];
    let victim: ReturnType<typeof q.add> | null = null;
    q.add(() => {
      ran.push('a');
      q.add(() => ran.push('a+5'), 5);
      q.cancel(victim!);
    }, 10);
    victim = q.add(() => ran.push('victim'), 10);
    q.add(() => {
      ran.push('boom');
      throw new Error('boom');
    }, 12);
    q.add(() => ran.push('after'), 12);
    advance(1010);
    expect(ran).toEqual(['a']);
    expect(() => advance(1012)).toThrow('boom');
    expect(ran).toEqual(['a', 'boom']);
    expect(live().length).toBe(1); // re-armed for what is left
    advance(1100);
    expect(ran).toEqual(['a', 'boom', 'after', 'a+5']);
  });

  it('keeps order through many adds and cancels (a model check)', () => {
    const { q, advance } = rig();
    const ran: number[] = [];
    const want: { due: number; id: number }[] = [];
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const handles: { h: ReturnType<typeof q.add>; id: number }[] = [];
    for (let id = 0; id < 400; id++) {
      const ms = rnd(300);
      handles.push({ h: q.add(() => ran.push(id), ms), id });
      want.push({ due: 1000 + ms, id });
      if (rnd(3) === 0) {
        const k = rnd(handles.length);
        const { h, id: gone } = handles[k]!;
        q.cancel(h);
        const w = want.findIndex((x) => x.id === gone);
        if (w >= 0) want.splice(w, 1);
      }
    }
    advance(5000);
    const order = [...want].sort((a, b) => a.due - b.due || a.id - b.id).map((x) => x.id);
    expect(ran).toEqual(order);
  });
});
