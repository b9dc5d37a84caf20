import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  assertTestAddress,
  createNetns,
  destroyNetns,
  netnsPath,
  normaliseSnapshotValue,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  snapshotNetns,
  sweepStaleNetns,
  useNetns,
  vethPair,
  withNetns,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ping']);

describe.skipIf(skip)('netns harness', () => {
  const a = useNetns('harn-a');
  const b = useNetns('harn-b');

  it('creates namespaces with loopback up and links only inside them', async () => {
    expect(a.name).toMatch(/^awgt-harn-a-[0-9a-f]{6}$/);
    expect(existsSync(netnsPath(a.name))).toBe(true);
    const hostLinks = (await run('ip', ['-o', 'link'])).stdout;
    const { ifA, ifB } = await vethPair(a.name, b.name, {
      addrA: ['10.200.7.1/24', 'fd00:200::7:1/64'],
      addrB: ['10.200.7.2/24', 'fd00:200::7:2/64'],
    });
    expect((await run('ip', ['-o', 'link'])).stdout).toBe(hostLinks);
    const lo = (await nsExec(a.name, 'ip', ['-j', 'link', 'show', 'lo'])).stdout;
    expect(JSON.parse(lo)[0].flags).toContain('UP');
    expect((await nsExec(a.name, 'ip', ['-o', 'link'])).stdout).toContain(ifA);
    expect((await nsExec(b.name, 'ip', ['-o', 'link'])).stdout).toContain(ifB);
  });

  it('pings across the veth pair, IPv4 and IPv6', async () => {
    const r4 = await nsExec(a.name, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.200.7.2']);
    expect(r4.stdout).toMatch(/2 received/);
    const r6 = await nsExec(a.name, 'ping', [
      '-6',
      '-c',
      '2',
      '-i',
      '0.2',
      '-W',
      '2',
      'fd00:200::7:2',
    ]);
    expect(r6.stdout).toMatch(/2 received/);
    // not reachable from a third, unconnected namespace
    await withNetns('harn-c', async (c) => {
      const r = await nsExec(c, 'ping', ['-c', '1', '-W', '1', '10.200.7.2'], { allowFail: true });
      expect(r.code).not.toBe(0);
    });
  });

  it('snapshot is stable and sees changes', async () => {
    const s1 = await snapshotNetns(a.name);
    await nsExec(a.name, 'ping', ['-c', '1', '-W', '1', '10.200.7.2']);
    expect(await snapshotNetns(a.name)).toEqual(s1);
    await nsExec(a.name, 'ip', ['route', 'add', '10.200.99.0/24', 'via', '10.200.7.2']);
    expect(await snapshotNetns(a.name)).not.toEqual(s1);
    await nsExec(a.name, 'ip', ['route', 'del', '10.200.99.0/24']);
    expect(await snapshotNetns(a.name)).toEqual(s1);
  });

  it('destroyNetns kills processes inside and removes the namespace', async () => {
    const ns = await createNetns('harn-d');
    const p = nsSpawn(ns, 'sleep', ['600']);
    // the process is really inside the namespace
    await expect
      .poll(async () => (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/))
      .toContain(String(p.pid));
    await destroyNetns(ns);
    expect(await p.exited).not.toBe(0);
    expect(existsSync(netnsPath(ns))).toBe(false);
  });

  it('sweep removes stale awgt- namespaces only', async () => {
    // a leftover from a crashed run: its owner record names a dead pid
    const stale = `awgt-harn-s-${process.pid.toString(16)}`;
    const live = await createNetns('harn-l');
    await run('ip', ['netns', 'add', stale]);
    try {
      mkdirSync('/run/awgt-owners', { recursive: true });
      writeFileSync(`/run/awgt-owners/${stale}`, '999999999');
      const removed = await sweepStaleNetns();
      expect(removed).toContain(stale);
      expect(removed).not.toContain(live);
      expect(existsSync(netnsPath(stale))).toBe(false);
      expect(existsSync(netnsPath(live))).toBe(true);
    } finally {
      await run('ip', ['netns', 'del', stale], { allowFail: true });
      await destroyNetns(live);
    }
  });
});

describe('harness pure helpers', () => {
  it('refuses addresses outside the test ranges', () => {
    expect(() => assertTestAddress('10.200.1.1/24')).not.toThrow();
    expect(() => assertTestAddress('fd00:200::1/64')).not.toThrow();
    expect(() => assertTestAddress('192.168.1.1/24')).toThrow();
    expect(() => assertTestAddress('fd00:201::1/64')).toThrow();
  });

  it('normalises counters and stats', () => {
    const v = normaliseSnapshotValue([
      { ifname: 'x', stats64: { rx: 1 }, rule: { expr: [{ counter: { packets: 5, bytes: 9 } }] } },
    ]);
    expect(v).toEqual([{ ifname: 'x', rule: { expr: [{ counter: { packets: 0, bytes: 0 } }] } }]);
  });
});
