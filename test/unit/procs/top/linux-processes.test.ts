/**
 * The Linux reading's process table: a flow that names a process after its exit gets the
 * process as last read, also when readings in between named none of its flows (the socket
 * close notification a reading late, a UDP flow's entry after a gap).
 */
import { describe, expect, it } from 'vitest';
import { ProcessTable } from '../../../../src/procs/top/linux-processes.js';
import type { ProcessInfo } from '../../../../src/procs/top/reading.js';

function rig(keepMs?: number) {
  const alive = new Map<number, ProcessInfo>();
  const t = new ProcessTable((pid) => alive.get(pid), keepMs);
  /** one reading: the owners' pids read first, then the pids its flows name */
  const reading = (at: number, owners: number[], named: number[]) => {
    const processes = new Map<number, ProcessInfo>();
    for (const pid of owners) {
      const info = t.read(pid);
      if (info) processes.set(pid, info);
    }
    for (const pid of named) {
      if (processes.has(pid)) continue;
      const info = t.read(pid);
      if (info) processes.set(pid, info);
    }
    return t.finish(processes, new Set(named), at);
  };
  return { alive, reading };
}

const iperf3: ProcessInfo = { pid: 40, name: 'iperf3', exe: '/usr/bin/iperf3', uid: 0 };

describe('ProcessTable', () => {
  it('an exited process named again after a reading that named none of its flows keeps its name', () => {
    const { alive, reading } = rig();
    alive.set(40, iperf3);
    expect(reading(0, [40], [40]).get(40)).toEqual(iperf3);
    alive.delete(40); // iperf3 exits; its socket left the dump, its close not yet announced
    expect(reading(1_000, [], []).size).toBe(0);
    // the close notification arrives: the closed connection's flow names pid 40
    expect(reading(2_000, [], [40]).get(40)).toEqual(iperf3);
  });

  it('a zombie (name, no exe link) keeps the exe an earlier reading had', () => {
    const { alive, reading } = rig();
    alive.set(40, iperf3);
    reading(0, [40], [40]);
    alive.set(40, { pid: 40, name: 'iperf3', uid: 0 });
    expect(reading(1_000, [40], [40]).get(40)).toEqual(iperf3);
  });

  it('only the pids the flows name are in the table; a pid read by no reading is `?`', () => {
    const { alive, reading } = rig();
    alive.set(40, iperf3);
    alive.set(41, { pid: 41, name: 'sshd' });
    const t = reading(0, [40, 41], [40, 77]);
    expect([...t.keys()].sort()).toEqual([40, 77]);
    expect(t.get(77)).toEqual({ pid: 77, name: '?' });
  });

  it('the last reading of a process is forgotten keepMs after a reading last named it', () => {
    const { alive, reading } = rig(10_000);
    alive.set(40, iperf3);
    reading(0, [40], [40]);
    alive.delete(40);
    expect(reading(9_000, [], [40]).get(40)).toEqual(iperf3); // named: kept from now on
    expect(reading(19_000, [], []).size).toBe(0);
    expect(reading(19_500, [], [40]).get(40)).toEqual(iperf3);
    reading(30_000, [], []);
    expect(reading(30_001, [], [40]).get(40)).toEqual({ pid: 40, name: '?' });
  });

  it('a pid taken by a new process is the new process, not the exited one', () => {
    const { alive, reading } = rig();
    alive.set(40, iperf3);
    reading(0, [40], [40]);
    alive.set(40, { pid: 40, name: 'curl', exe: '/usr/bin/curl' });
    expect(reading(1_000, [40], [40]).get(40)).toEqual({
      pid: 40,
      name: 'curl',
      exe: '/usr/bin/curl',
    });
  });
});
