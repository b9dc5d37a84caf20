/**
 * Socket inode → pid over a fake /proc: where the search looks first, that it looks only
 * for what is new, and how it forgets.
 */
import { describe, expect, it } from 'vitest';
import { SocketOwners, type FdFs } from '../../../../src/procs/top/linux-owners.js';
import { CgroupNames, type CgroupFs } from '../../../../src/procs/top/linux-cgroups.js';

interface Proc {
  fds: Record<string, string>;
  cgroup?: string;
}

function fakeProc(procs: Map<number, Proc>): FdFs & { reads: number[] } {
  const reads: number[] = [];
  return {
    reads,
    pids: () => [...procs.keys()],
    fds(pid) {
      const p = procs.get(pid);
      if (!p) return undefined;
      reads.push(pid);
      return Object.keys(p.fds);
    },
    link: (pid, fd) => procs.get(pid)?.fds[fd],
    alive: (pid) => procs.has(pid),
    cgroupPids: (path) => [...procs].filter(([, p]) => p.cgroup === path).map(([pid]) => pid),
  };
}

const sockets = (...inodes: number[]): Record<string, string> =>
  Object.fromEntries(inodes.map((i, n) => [String(n + 3), `socket:[${i}]`]));

describe('socket owners', () => {
  it('finds owners by a full scan once, then keeps them without reading /proc', () => {
    const procs = new Map<number, Proc>([
      [10, { fds: { '0': '/dev/null', ...sockets(100, 101) } }],
      [20, { fds: sockets(200) }],
      [30, { fds: { '1': 'pipe:[5]' } }],
    ]);
    const fs = fakeProc(procs);
    const o = new SocketOwners(fs);
    expect(o.resolve(new Set([100, 200, 101]))).toEqual(
      new Map([
        [100, 10],
        [200, 20],
        [101, 10],
      ]),
    );
    expect(o.stats.fullScans).toBe(1);
    fs.reads.length = 0;
    expect(o.resolve(new Set([100, 200])).size).toBe(2);
    expect(fs.reads).toEqual([]);
  });

  it('looks for a new socket in the processes that own sockets first, then its cgroup', () => {
    const procs = new Map<number, Proc>([
      [10, { fds: sockets(100), cgroup: '/a' }],
      [20, { fds: sockets(200), cgroup: '/b' }],
      [30, { fds: {}, cgroup: '/c' }],
      [40, { fds: {}, cgroup: '/b' }],
    ]);
    const fs = fakeProc(procs);
    const o = new SocketOwners(fs);
    o.resolve(new Set([100]));
    // pid 10 opens another socket: found in it alone
    procs.get(10)!.fds['9'] = 'socket:[101]';
    fs.reads.length = 0;
    expect(o.resolve(new Set([100, 101])).get(101)).toBe(10);
    expect(fs.reads).toEqual([10]);
    // pid 40 (cgroup /b) opens one: the owners, then cgroup /b's processes; no full scan
    procs.get(40)!.fds['3'] = 'socket:[400]';
    fs.reads.length = 0;
    const scans = o.stats.fullScans;
    expect(
      o.resolve(new Set([100, 101, 400]), (i) => (i === 400 ? '/b' : undefined)).get(400),
    ).toBe(40);
    expect(fs.reads).toEqual([10, 20, 40]);
    expect(o.stats.fullScans).toBe(scans);
  });

  it('does not search again for what a full scan did not find, until it is new again', () => {
    const procs = new Map<number, Proc>([[10, { fds: sockets(100) }]]);
    const fs = fakeProc(procs);
    const o = new SocketOwners(fs);
    expect(o.resolve(new Set([100, 999])).has(999)).toBe(false);
    expect(o.stats.fullScans).toBe(1);
    o.resolve(new Set([100, 999]));
    expect(o.stats.fullScans).toBe(1);
    // 999 left the dump and came back (a new socket with a reused inode): searched again
    o.resolve(new Set([100]));
    procs.set(50, { fds: sockets(999) });
    expect(o.resolve(new Set([100, 999])).get(999)).toBe(50);
  });

  it('forgets an owner that exited, and finds who holds its socket now', () => {
    const procs = new Map<number, Proc>([
      [10, { fds: sockets(100) }],
      [11, { fds: sockets(100) }],
    ]);
    const o = new SocketOwners(fakeProc(procs));
    const first = o.resolve(new Set([100])).get(100);
    procs.delete(first!);
    expect(o.resolve(new Set([100])).get(100)).toBe(first === 10 ? 11 : 10);
  });

  it('ignores inode 0 (a socket without a file)', () => {
    const fs = fakeProc(new Map());
    expect(new SocketOwners(fs).resolve(new Set([0])).size).toBe(0);
    expect(fs.reads).toEqual([]);
  });
});

describe('cgroup names', () => {
  function fakeCgroups(tree: Record<string, number>): CgroupFs & { walks: number } {
    const fs = {
      walks: 0,
      id: (p: string) => tree[p],
      children(p: string) {
        if (p === '/awg') fs.walks++;
        const pre = p === '/' ? '/' : `${p}/`;
        return Object.keys(tree)
          .filter((k) => k.startsWith(pre) && k !== p && !k.slice(pre.length).includes('/'))
          .map((k) => k.slice(pre.length));
      },
    };
    return fs;
  }

  it('names the root and awg’s subtree by directory inode; walks again for a new id', () => {
    const tree: Record<string, number> = { '/': 1, '/awg': 50, '/awg/web': 51, '/user.slice': 9 };
    const fs = fakeCgroups(tree);
    const n = new CgroupNames(fs, '/awg');
    expect([n.name(1), n.name(50), n.name(51)]).toEqual(['/', '/awg', '/awg/web']);
    expect(fs.walks).toBe(1);
    tree['/awg/mail'] = 52;
    n.tick();
    expect(n.name(52)).toBe('/awg/mail');
    expect(fs.walks).toBe(2);
    // outside the subtree: unknown until a process there is seen; asked again, no walk
    n.tick();
    expect(n.name(9)).toBeUndefined();
    n.tick();
    expect(n.name(9)).toBeUndefined();
    expect(fs.walks).toBe(3);
    n.learn('/user.slice');
    expect(n.name(9)).toBe('/user.slice');
  });

  it('walks at most once per read', () => {
    const fs = fakeCgroups({ '/': 1, '/awg': 50 });
    const n = new CgroupNames(fs, '/awg');
    n.tick();
    n.name(1000);
    n.name(1001);
    expect(fs.walks).toBe(2);
  });
});
