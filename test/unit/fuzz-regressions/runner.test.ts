/**
 * The fuzz runner's hang budget (test/fuzz/runner.ts `timed`) counts the CPU time a case
 * spends, not the wall time it waits: a loop that spends the budget fails as a hang; a case
 * held off the CPU (a busy machine, CI's idle cgroup) for longer than the budget does not.
 */
import { describe, expect, it } from 'vitest';
import { timed } from '../../fuzz/runner.js';

/** spends `ms` of this thread's CPU time (not wall time: a busy machine only makes it longer) */
function spendCpu(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const d = process.cpuUsage(start);
    if ((d.user + d.system) / 1000 >= ms) return;
  }
}

describe('fuzz runner: the hang budget', () => {
  it('fails a case that spends more CPU than the budget', () => {
    expect(() => timed(() => spendCpu(60), 20)()).toThrow(/case spent \d+ ms of CPU .*hang budget/);
  });

  it('passes a case that waits longer than the budget without spending CPU', () => {
    const slept = new Int32Array(new SharedArrayBuffer(4));
    expect(() => timed(() => void Atomics.wait(slept, 0, 0, 80), 20)()).not.toThrow();
  });
});
