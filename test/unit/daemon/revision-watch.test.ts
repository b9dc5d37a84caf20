/**
 * The rollout gate at work (src/daemon/revision-watch.ts) with a simulated clock, timer and
 * connect: baseline, pass, fail → revert + rejection (persisted, reported), a newer revision
 * replacing the one under check.
 */
import { describe, expect, it } from 'vitest';
import { sourcesHash, type Source } from '../../../src/daemon/config-follower.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { RevisionWatch, type GoodRevision } from '../../../src/daemon/revision-watch.js';
import { MemoryStateStore } from '../../../src/util/state.js';

const src = (name: string, fleet?: unknown): Source =>
  ({
    file: `/nowhere/${name}/awg.yaml`,
    prepared: {
      config: {
        tunnels: { vpn: {} },
        fleet: fleet ?? { verify: { within: '10s', tunnels: 'all', reach: ['tcp:10.0.0.1:9418'] } },
      },
      sources: [],
    },
  }) as unknown as Source;

function rig(o: { state?: MemoryStateStore } = {}) {
  let clock = 1_000_000;
  const timers: { at: number; fn: () => void }[] = [];
  const events: DaemonEvent[] = [];
  const reverts: GoodRevision[] = [];
  const up = new Set<string>(['vpn']);
  const answering = new Set<string>(['10.0.0.1:9418']);
  const state = o.state ?? new MemoryStateStore();
  const w = new RevisionWatch({
    state,
    emit: (e) => events.push(e),
    up: () => up,
    revert: async (to) => {
      reverts.push(to);
    },
    connect: async (host, port) => answering.has(`${host}:${port}`),
    timer: (ms, fn) => {
      const t = { at: clock + ms, fn };
      timers.push(t);
      return () => timers.splice(timers.indexOf(t), 1);
    },
    now: () => clock,
  });
  /** run the timers due within `ms` (each look may schedule the next) */
  const advance = async (ms: number) => {
    const end = clock + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const t = timers[0];
      if (!t || t.at > end) break;
      timers.shift();
      clock = t.at;
      t.fn();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
    clock = end;
  };
  return { w, events, reverts, up, answering, state, advance };
}

const converged = (w: RevisionWatch, revision: string, source: Source, changes = 2) =>
  w.converged({ revision, source, changes, upBefore: new Set(['vpn']) });

describe('RevisionWatch', () => {
  it('the first revision is the baseline; a new one that passes becomes the last good', async () => {
    const r = rig();
    converged(r.w, 'a', src('a'));
    expect(r.w.state()).toEqual({});
    expect(r.state.get('rollout')).toEqual({ lastGood: 'a', rejected: [] });
    converged(r.w, 'b', src('b'));
    expect(r.w.state().verifying?.revision).toBe('b');
    await r.advance(1);
    expect(r.w.state()).toEqual({});
    expect(r.state.get('rollout')).toEqual({ lastGood: 'b', rejected: [] });
    expect(r.events).toEqual([]);
  });

  it('a revision that breaks the tunnel is reverted within the bound, rejected, reported and persisted', async () => {
    const r = rig();
    const a = src('a');
    converged(r.w, 'a', a);
    converged(r.w, 'b', src('b'));
    r.up.clear();
    await r.advance(9_999);
    expect(r.reverts).toEqual([]);
    await r.advance(600);
    expect(r.reverts).toEqual([{ revision: 'a', source: a }]);
    expect(r.events).toEqual([
      {
        type: 'revision-rejected',
        at: expect.any(String),
        revision: 'b',
        reason:
          'tunnel(s) vpn not up; tcp:10.0.0.1:9418 (10.0.0.1:9418) not reached within 10s of the apply',
        revertedTo: 'a',
      },
    ]);
    expect(r.w.rejected('b')?.reason).toMatch(/vpn not up/);
    expect(r.w.state().rejected?.map((x) => x.revision)).toEqual(['b']);
    // a restarted daemon still holds b back
    expect(rig({ state: r.state }).w.rejected('b')?.revision).toBe('b');
  });

  it('a reach target that does not answer fails the check; the answer is tried through up tunnels only', async () => {
    const r = rig();
    converged(r.w, 'a', src('a'));
    converged(r.w, 'b', src('b'));
    r.answering.clear();
    await r.advance(10_500);
    expect(r.events[0]).toMatchObject({
      type: 'revision-rejected',
      reason: 'tcp:10.0.0.1:9418 (10.0.0.1:9418) not reached within 10s of the apply',
    });
  });

  it('a tunnel that comes up late, within the bound, passes', async () => {
    const r = rig();
    converged(r.w, 'a', src('a'));
    converged(r.w, 'b', src('b'));
    r.up.clear();
    await r.advance(5_000);
    r.up.add('vpn');
    await r.advance(1_000);
    expect(r.w.state()).toEqual({});
    expect(r.reverts).toEqual([]);
  });

  it('a newer revision converged during the check replaces it; a run of the same one does not restart it', async () => {
    const r = rig();
    const a = src('a');
    converged(r.w, 'a', a);
    r.up.clear();
    converged(r.w, 'b', src('b'));
    await r.advance(6_000);
    converged(r.w, 'b', src('b'));
    expect(r.w.state().verifying?.deadline).toBe(new Date(1_000_000 + 10_000).toISOString());
    converged(r.w, 'c', src('c'));
    await r.advance(9_000);
    expect(r.reverts).toEqual([]);
    await r.advance(1_500);
    expect(r.events.map((e) => e.type === 'revision-rejected' && e.revision)).toEqual(['c']);
    expect(r.reverts[0]?.revision).toBe('a');
  });

  it('a newer commit whose files here are the rejected ones is held back and rejected too, never applied', async () => {
    const r = rig();
    converged(r.w, 'a', src('a'));
    const bad = src('b');
    converged(r.w, 'b', bad);
    r.up.clear();
    await r.advance(10_500);
    expect(r.reverts.map((x) => x.revision)).toEqual(['a']);
    const same = sourcesHash([bad.file, ...bad.prepared.sources]);
    expect(r.w.holdBack('b', () => 'unused')).toBe(true);
    expect(r.w.holdBack('c', () => same)).toBe(true);
    expect(r.w.holdBack('d', () => 'other files')).toBe(false);
    expect(r.w.state().rejected?.map((x) => x.revision)).toEqual(['b', 'c']);
    expect(r.w.rejected('c')?.reason).toMatch(
      /^this host's files are those of rejected revision b: tunnel/,
    );
    expect(
      r.events.map((e) => e.type === 'revision-rejected' && [e.revision, e.revertedTo]),
    ).toEqual([
      ['b', 'a'],
      ['c', undefined],
    ]);
    // the content hash stays in the state directory, out of the status
    expect(Object.keys(r.w.state().rejected![0]!)).toEqual(['revision', 'reason', 'at']);
    expect(
      (r.state.get('rollout') as { rejected: { content?: string }[] }).rejected[0]?.content,
    ).toBe(same);
  });

  it('a run that changed nothing needs no check', async () => {
    const r = rig();
    converged(r.w, 'a', src('a'));
    r.up.clear();
    converged(r.w, 'b', src('b'), 0);
    expect(r.w.state()).toEqual({});
    expect(r.state.get('rollout')).toEqual({ lastGood: 'b', rejected: [] });
  });

  it('a revert that fails is reported as an error (the loop retries toward the good revision)', async () => {
    const r = rig();
    const w = new RevisionWatch({
      state: new MemoryStateStore(),
      emit: (e) => r.events.push(e),
      up: () => new Set(),
      revert: async () => {
        throw new Error('nft said no');
      },
      connect: async () => false,
      timer: (ms, fn) => {
        const t = setTimeout(fn, 0);
        return () => clearTimeout(t);
      },
      now: (() => {
        let n = 0;
        return () => (n += 20_000);
      })(),
    });
    converged(w, 'a', src('a'));
    converged(w, 'b', src('b'));
    await new Promise((res) => setTimeout(res, 20));
    expect(r.events.map((e) => e.type)).toEqual(['revision-rejected', 'error']);
    expect(r.events[1]).toMatchObject({
      kind: 'verification',
      message: expect.stringMatching(/nft said no/),
    });
    w.close();
  });
});
