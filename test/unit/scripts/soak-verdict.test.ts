/**
 * The soak's memory verdict (test/netns/soak-verdict.ts): growth is judged on the anonymous
 * memory (RssAnon + VmSwap), so a sample whose RSS is low because the daemon had just given
 * back its executable's file pages does not fail a flat run, and anonymous growth still does.
 */
import { describe, expect, it } from 'vitest';
import type { Sample, SoakResult } from '../../netns/soak-support.js';
import { RSS_RISE_MB, failures, figures } from '../../netns/soak-verdict.js';

const MB = 1024;

/** a passing soak of 5 minutes (1-minute warm-up), sampled every 10 s, with these readings */
function result(readings: { rssMb: number; anonMb: number }[]): SoakResult {
  const samples: Sample[] = readings.map((x, i) => ({
    t: i * 10_000,
    rssKb: x.rssMb * MB,
    anonKb: x.anonMb * MB,
    fds: 50,
    cpuTicks: i,
    placer: { pid: 2, rssKb: 60 * MB, anonKb: 18 * MB, fds: 21 },
    otherChildren: 0,
    load1: 1,
  }));
  const fds = { count: 34, kinds: {}, nftSets: 0, nftElements: 0, engines: 1, awgObjects: 16 };
  return {
    options: { warmupMs: 60_000 },
    ranMs: 300_000,
    samples,
    objectSamples: [],
    edits: { done: 10, converged: 10, latenciesMs: [1000], notConverged: [] },
    reconciles: { finished: 10, byOutcome: { converged: 10 }, notConverged: [] },
    errorEvents: { count: 0, first: [] },
    flaps: { done: 1, failed: [] },
    peerRestarts: { done: 1, failed: [] },
    execs: { started: 10, spawnErrors: 0, checked: 10, placed: 10, unplaced: 0, gone: 0, ms: 1 },
    placement: undefined,
    placerPids: [2],
    api: { calls: 10, failures: 0, errors: [], byMethod: {} },
    streams: [],
    leak: { leaks: 0, first: [], wireguard: 10, captures: 1 },
    app: { rounds: 1, replies: 1, recovered: true },
    daemon: { pid: 1, exit: 0, leftProcesses: [] },
    rest: { start: { daemon: fds }, end: { daemon: fds }, growth: [] },
    problems: [],
    load: { start: [1], end: [1], max1: 1 },
  } as unknown as SoakResult;
}

const memory = (r: SoakResult) => failures(r, figures(r)).filter((f) => /memory|RSS/.test(f));

describe('the soak judges memory growth on the anonymous part', () => {
  it('a flat run is not failed by one RSS sample 20 MB low (its file pages just given back)', () => {
    // CI run of 2026-11-29: RSS 80–84 MB, one sample at 60.1 MB in the first half
    const xs = Array.from({ length: 31 }, (_, i) => ({
      rssMb: i === 9 ? 60.1 : 81 + (i % 3),
      anonMb: 53 + (i % 3),
    }));
    const r = result(xs);
    const f = figures(r);
    expect(f.daemon.rssMb.max).toBe(83);
    expect(f.daemon.anonMb.floorLast - f.daemon.anonMb.floorFirst).toBeLessThan(1);
    expect(memory(r)).toEqual([]);
  });

  it('anonymous memory that grows past the bound between the halves fails', () => {
    const xs = Array.from({ length: 31 }, (_, i) => ({
      rssMb: 81 + i,
      anonMb: 53 + i * ((RSS_RISE_MB + 8) / 12),
    }));
    expect(memory(result(xs))).toEqual([
      expect.stringMatching(/^the daemon's anonymous memory \(heap, malloc\) grew after warm-up/),
    ]);
  });
});
