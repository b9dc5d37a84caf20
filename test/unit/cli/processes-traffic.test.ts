import { describe, expect, it } from 'vitest';
import { print } from '../../../src/cli/commands/processes.js';
import type { ProcessInfo } from '../../../src/daemon/core.js';

const io = () => {
  let out = '';
  return { io: { out: (s: string) => (out += s), err: () => {} } as never, text: () => out };
};
const procs: ProcessInfo[] = [
  { pid: 10, name: 'curl', path: '/usr/bin/curl', rule: 'work', target: 'vpn', route: 'vpn' },
  { pid: 11, name: 'git', path: '/usr/bin/git', rule: 'work', target: 'vpn', route: 'vpn' },
  { pid: 12, name: 'sh', path: '/bin/sh', route: 'direct' },
];
const traffic = new Map([
  [
    'work',
    {
      name: 'work',
      target: 'vpn',
      route: 'vpn',
      txPackets: 3,
      txBytes: 2048,
      rxPackets: 4,
      rxBytes: 100,
    },
  ],
]);

describe('awg processes: traffic per rule cgroup', () => {
  it('JSON: every process of a rule carries the cgroup totals as ruleTraffic; others none', () => {
    const c = io();
    print(c.io, { json: true }, procs, traffic);
    const doc = JSON.parse(c.text()) as (ProcessInfo & { ruleTraffic?: unknown })[];
    expect(doc.map((p) => p.ruleTraffic)).toEqual([
      { txPackets: 3, txBytes: 2048, rxPackets: 4, rxBytes: 100 },
      { txPackets: 3, txBytes: 2048, rxPackets: 4, rxBytes: 100 },
      undefined,
    ]);
  });

  it('text: a RULE TX/RX column and the note that it is per cgroup; no note without counters', () => {
    const c = io();
    print(c.io, {}, procs, traffic);
    expect(c.text()).toMatch(/^PID +NAME +RULE +TARGET +ROUTE +RULE TX\/RX +EXECUTABLE$/m);
    expect(c.text()).toMatch(/^10 +curl +work +vpn +vpn +2\.0 KiB\/100 B +\/usr\/bin\/curl$/m);
    expect(c.text()).toMatch(/^12 +sh +- +- +direct +- +\/bin\/sh$/m);
    expect(c.text()).toContain('not per process');
    const bare = io();
    print(bare.io, {}, procs);
    expect(bare.text()).not.toContain('not per process');
  });
});
