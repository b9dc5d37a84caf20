import { describe, expect, it } from 'vitest';
import { CgroupSetKeeper } from '../../../src/daemon/cgroup-sets.js';
import type { RawElement } from '../../../src/native/nftset.js';

function harness() {
  const ino = new Map<string, bigint>();
  const dirs = new Set<string>(['/sys/fs/cgroup', '/sys/fs/cgroup/unified']);
  const writes: { set: string; n: number }[] = [];
  const watchers = new Map<string, () => void>();
  const queue: (() => void)[] = [];
  const keeper = new CgroupSetKeeper({
    table: 'awg',
    writer: {
      replace: (set: string, els: readonly RawElement[]) =>
        void writes.push({ set, n: els.length }),
      close: () => undefined,
    },
    stat: (p) => ino.get(p),
    exists: (d) => dirs.has(d),
    watch: (dir, on) => {
      watchers.set(dir, on);
      return { close: () => void watchers.delete(dir) };
    },
    defer: (fn) => void queue.push(fn),
  });
  const mkdir = (p: string, id: bigint) => {
    ino.set(p, id);
    dirs.add(`/sys/fs/cgroup/${p}`);
  };
  const rmdir = (p: string) => {
    ino.delete(p);
    dirs.delete(`/sys/fs/cgroup/${p}`);
  };
  const fire = (dir: string) => watchers.get(dir)?.();
  const run = () => {
    while (queue.length) queue.shift()!();
  };
  return { keeper, writes, watchers, mkdir, rmdir, fire, run };
}

describe('CgroupSetKeeper', () => {
  it('fills at start, follows a unit that appears, restarts (new id) and goes', () => {
    const h = harness();
    h.keeper.setSets([{ set: 'w_web', paths: ['unified/system.slice/web.service'] }]);
    // nothing exists yet: the set is emptied; the nearest existing ancestor is watched
    expect(h.writes).toEqual([{ set: 'w_web', n: 0 }]);
    expect([...h.watchers.keys()]).toEqual(['/sys/fs/cgroup/unified']);
    h.mkdir('unified/system.slice', 5n);
    h.fire('/sys/fs/cgroup/unified');
    h.run();
    // the slice appeared: no change of the set (still empty), now its directory is watched
    expect(h.writes.length).toBe(1);
    expect([...h.watchers.keys()]).toEqual(['/sys/fs/cgroup/unified/system.slice']);
    h.mkdir('unified/system.slice/web.service', 100n);
    h.fire('/sys/fs/cgroup/unified/system.slice');
    h.fire('/sys/fs/cgroup/unified/system.slice');
    h.run();
    expect(h.writes).toEqual([
      { set: 'w_web', n: 0 },
      { set: 'w_web', n: 1 },
    ]);
    // a restart: removed and made again with a new id → one rewrite after the burst
    h.rmdir('unified/system.slice/web.service');
    h.fire('/sys/fs/cgroup/unified/system.slice');
    h.mkdir('unified/system.slice/web.service', 101n);
    h.fire('/sys/fs/cgroup/unified/system.slice');
    h.run();
    expect(h.writes.length).toBe(3);
    expect(h.keeper.stats.events).toBe(5);
    // stopped: the stale id is removed
    h.rmdir('unified/system.slice/web.service');
    h.fire('/sys/fs/cgroup/unified/system.slice');
    h.run();
    expect(h.writes.at(-1)).toEqual({ set: 'w_web', n: 0 });
  });
  it('afterApply rewrites every set even when nothing changed (a table replace empties them)', () => {
    const h = harness();
    h.mkdir('unified/a', 1n);
    h.keeper.setSets([
      { set: 'w_a', paths: ['unified/a'] },
      { set: 'w_b', paths: ['unified/b'] },
    ]);
    expect(h.writes.length).toBe(2);
    h.keeper.sync();
    expect(h.writes.length).toBe(2);
    h.keeper.afterApply();
    expect(h.writes.length).toBe(4);
  });
  it('a failed write is counted, reported and retried at the next sync', () => {
    const errors: string[] = [];
    let fail = true;
    const k = new CgroupSetKeeper({
      table: 'awg',
      writer: {
        replace: () => {
          if (fail) throw new Error('ENOENT');
        },
        close: () => undefined,
      },
      stat: () => 9n,
      exists: () => true,
      watch: () => undefined,
      onError: (e) => void errors.push(e.message),
    });
    k.setSets([{ set: 'w_x', paths: ['unified/x'] }]);
    expect(k.stats).toMatchObject({ writes: 0, failures: 1 });
    fail = false;
    k.sync();
    expect(k.stats).toMatchObject({ writes: 1, failures: 1 });
    expect(errors).toEqual(['ENOENT']);
    k.close();
  });
});
