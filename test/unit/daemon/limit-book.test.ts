/**
 * The runtime limits' book (src/daemon/limit-book.ts) over a table of processes and cgroups:
 * who may be limited and by whom, where the cgroup goes, what a clear puts back, what the
 * state directory keeps and what a restart does with it (a reused pid is never limited),
 * expiry when the cgroup empties, and what each run is given. The kernel side (moves,
 * inheritance by forked children, tc classes) is test/netns/limit-runtime.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import {
  LIMITS_STATE_KEY,
  LimitBook,
  checkRates,
  limitParents,
  type LimitRecord,
} from '../../../src/daemon/limit-book.js';
import { BOOT, FakeLimitSystem as FakeSystem, type Proc } from '../../helpers/limit-system.js';
import { loadConfigText } from '../../../src/config/load.js';
import { MemoryStateStore } from '../../../src/util/state.js';

const DAEMON = 500;
const ROOT = { uid: 0, root: true };
const ALICE = { uid: 1000, root: false };
const BOB = { uid: 1001, root: false };

function setup(procs: Proc[] = [], state = new MemoryStateStore()) {
  const sys = new FakeSystem([
    {
      pid: 1,
      ppid: 0,
      uid: 0,
      exe: '/usr/lib/systemd/systemd',
      comm: 'systemd',
      cgroup: 'init.scope',
      start: '1',
    },
    { pid: 2, ppid: 0, uid: 0, comm: 'kthreadd', cgroup: '', start: '2' },
    {
      pid: DAEMON,
      ppid: 1,
      uid: 0,
      exe: '/usr/bin/node',
      comm: 'awg',
      cgroup: 'system.slice',
      start: '50',
    },
    {
      pid: 501,
      ppid: DAEMON,
      uid: 0,
      exe: '/usr/bin/node',
      comm: 'awg placer',
      cgroup: 'system.slice',
      start: '51',
    },
    {
      pid: 1200,
      ppid: 1,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'firefox',
      cgroup: 'awg/web',
      start: '120',
    },
    {
      pid: 1201,
      ppid: 1200,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'Web Content',
      cgroup: 'awg/web',
      start: '121',
    },
    {
      pid: 1300,
      ppid: 1,
      uid: 0,
      exe: '/usr/bin/restic',
      comm: 'restic',
      cgroup: 'system.slice/backup.service',
      start: '130',
    },
    {
      pid: 1400,
      ppid: 1,
      uid: 1001,
      exe: '/usr/bin/curl',
      comm: 'curl',
      cgroup: 'awg/web',
      start: '140',
    },
    ...procs,
  ]);
  const events: DaemonEvent[] = [];
  let wakes = 0;
  const make = () =>
    new LimitBook({
      state,
      system: () => sys,
      selfPid: DAEMON,
      emit: (e) => events.push(e),
      onMaybeEmpty: () => wakes++,
      now: () => new Date('2026-11-26T10:00:00.000Z'),
    });
  return { sys, state, events, book: make(), make, wakes: () => wakes };
}

const fail = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e as { kind: string; message: string };
  }
  throw new Error('did not throw');
};

const config = loadConfigText(
  `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.50.0/24]
rules:
  - name: web
    match: { path: /usr/bin/firefox }
    target: vpn
`,
  '/etc/awg/awg.yaml',
).config!;

describe('LimitBook: what may be limited', () => {
  it('refuses pid 1, a missing process, a kernel thread, the daemon and what it started, another network namespace', () => {
    const { book, sys } = setup([
      {
        pid: 1500,
        ppid: 1,
        uid: 0,
        exe: '/usr/bin/x',
        comm: 'x',
        cgroup: 'awg/web',
        netns: 'net:[4026532000]',
        start: '150',
      },
    ]);
    const msg = (pid: number) => fail(() => book.set({ pid, download: 1e6 }, ROOT, 'awg'));
    expect(msg(1)).toMatchObject({
      kind: 'invalid-config',
      message: 'pid 1 is the init process; awg does not limit it',
    });
    expect(msg(9999).message).toBe('there is no process 9999');
    expect(msg(2).message).toMatch(/^process 2 is a kernel thread/);
    expect(msg(DAEMON).message).toMatch(/^process 500 is awg's own/);
    expect(msg(501).message).toMatch(/^process 501 is awg's own/);
    expect(msg(1500).message).toMatch(/another network namespace/);
    expect(sys.log).toEqual([]);
    expect(book.size).toBe(0);
  });

  it('rates: at least one, each between 8kbit and 100Gbit', () => {
    expect(fail(() => checkRates({})).message).toBe(
      'a limit needs an upload rate, a download rate or both',
    );
    expect(fail(() => checkRates({ upload: 7999 })).message).toMatch(
      /^upload 7999 bit\/s: a limit must be between 8kbit and 100Gbit/,
    );
    expect(fail(() => checkRates({ download: 100e9 + 1 })).kind).toBe('invalid-config');
    expect(checkRates({ upload: 8000 })).toEqual({ upload: 8000 });
  });

  it('a socket-group member: only processes whose real and effective uid are its own', () => {
    const { book, sys } = setup([
      {
        pid: 1600,
        ppid: 1,
        uid: 1000,
        euid: 0,
        exe: '/usr/bin/sudo',
        comm: 'sudo',
        cgroup: 'awg/web',
        start: '160',
      },
    ]);
    expect(fail(() => book.set({ pid: 1400, download: 1e6 }, ALICE, 'awg'))).toMatchObject({
      kind: 'permission',
      message:
        'process 1400 belongs to uid 1001; a socket-group member may limit only its own processes (uid 1000)',
    });
    expect(fail(() => book.set({ pid: 1300, download: 1e6 }, ALICE, 'awg')).kind).toBe(
      'permission',
    );
    expect(fail(() => book.set({ pid: 1600, download: 1e6 }, ALICE, 'awg')).message).toContain(
      'belongs to uid 1000 (effective 0)',
    );
    expect(book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg').changed).toBe(true);
    expect(sys.cgroup(1200)).toBe('awg/web/_limit-1200');
    // another member may neither change nor clear it; root may
    expect(fail(() => book.set({ pid: 1200, download: 2e6 }, BOB, 'awg')).kind).toBe('permission');
    expect(fail(() => book.clear(1200, BOB)).kind).toBe('permission');
    expect(book.set({ pid: 1200, download: 2e6 }, ALICE, 'awg').changed).toBe(true);
    expect(book.set({ pid: 1200, download: 4e6 }, ROOT, 'awg').changed).toBe(true);
    // root changed it: now only root may change or clear it
    expect(fail(() => book.clear(1200, ALICE))).toMatchObject({
      kind: 'permission',
      message: 'the limit of process 1200 was set by root; only root may change or clear it',
    });
  });

  it('a member cannot take a process out of a limit root set by limiting it apart', () => {
    const { book, sys } = setup();
    book.set({ pid: 1200, download: 1e6 }, ROOT, 'awg');
    // a child forked afterwards is born in the limit's cgroup
    sys.add({
      pid: 1210,
      ppid: 1200,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'x',
      cgroup: 'awg/web/_limit-1200',
      start: '122',
    });
    expect(fail(() => book.set({ pid: 1210, download: 100e9 }, ALICE, 'awg'))).toMatchObject({
      kind: 'permission',
      message:
        'process 1210 is under the limit root set on process 1200; only root may limit it apart',
    });
    // root may: it gets a cgroup of its own beside, not inside, the first
    book.set({ pid: 1210, download: 5e6 }, ROOT, 'awg');
    expect(sys.cgroup(1210)).toBe('awg/web/_limit-1210');
  });
});

describe('LimitBook: the cgroup', () => {
  it('below the cgroup the process sits in; its children inherit it; the run is given it; routing keeps the rule (same parent)', () => {
    const { book, sys, events } = setup();
    const r = book.set({ pid: 1200, upload: 2e6, download: 1e6 }, ALICE, 'awg');
    expect(r.record).toMatchObject({
      group: 'awg/web/_limit-1200',
      uid: 1000,
      byRoot: false,
      name: 'firefox',
      path: '/usr/bin/firefox',
    });
    expect(r.record!.from).toBeUndefined();
    expect(sys.log).toEqual(['mkdir awg/web/_limit-1200', 'move 1200 awg/web/_limit-1200']);
    // 1201 was forked before the limit: it stays where it was
    expect(sys.cgroup(1201)).toBe('awg/web');
    sys.add({
      pid: 1202,
      ppid: 1200,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'Web Content',
      cgroup: 'awg/web/_limit-1200',
      start: '125',
    });
    expect(book.limitOf('/awg/web/_limit-1200')?.pid).toBe(1200);
    expect(book.limitOf('/awg/web')).toBeUndefined();
    expect(book.forRun(config, 'awg')).toEqual([
      { pid: 1200, group: 'awg/web/_limit-1200', upload: 2e6, download: 1e6 },
    ]);
    expect(book.list()).toEqual([
      {
        pid: 1200,
        upload: 2e6,
        download: 1e6,
        group: 'awg/web/_limit-1200',
        name: 'firefox',
        path: '/usr/bin/firefox',
        uid: 1000,
        since: '2026-11-26T10:00:00.000Z',
        processes: 2,
      },
    ]);
    expect(events).toEqual([
      {
        type: 'limit',
        at: '2026-11-26T10:00:00.000Z',
        pid: 1200,
        action: 'added',
        upload: 2e6,
        download: 1e6,
      },
    ]);
    // the same rates again: nothing changes
    expect(book.set({ pid: 1200, upload: 2e6, download: 1e6 }, ALICE, 'awg').changed).toBe(false);
    // new rates replace the old ones exactly (upload no longer limited)
    book.set({ pid: 1200, download: 3e6 }, ALICE, 'awg');
    expect(book.forRun(config, 'awg')).toEqual([
      { pid: 1200, group: 'awg/web/_limit-1200', download: 3e6 },
    ]);
    expect(events.at(-1)).toMatchObject({ action: 'changed', download: 3e6 });
    expect(events.at(-1)).not.toHaveProperty('upload');
  });

  it('a process outside our subtree goes below the root; clear puts its processes back where it came from and removes the cgroup', () => {
    const { book, sys, events } = setup();
    book.set({ pid: 1300, download: 1e6 }, ROOT, 'awg');
    expect(sys.cgroup(1300)).toBe('awg/_limit-1300');
    sys.add({
      pid: 1301,
      ppid: 1300,
      uid: 0,
      exe: '/usr/bin/ssh',
      comm: 'ssh',
      cgroup: 'awg/_limit-1300',
      start: '131',
    });
    sys.log.length = 0;
    expect(book.clear(1300, ROOT).changed).toBe(true);
    expect(sys.cgroup(1300)).toBe('system.slice/backup.service');
    expect(sys.cgroup(1301)).toBe('system.slice/backup.service');
    expect(sys.log).toEqual([
      'move 1300 system.slice/backup.service',
      'move 1301 system.slice/backup.service',
      'rmdir awg/_limit-1300',
    ]);
    expect(book.list()).toEqual([]);
    expect(events.at(-1)).toMatchObject({ action: 'removed', pid: 1300, reason: 'clear' });
    expect(fail(() => book.clear(1300, ROOT)).message).toBe('process 1300 has no limit');
  });

  it('clear of a process in a rule cgroup: back to that cgroup', () => {
    const { book, sys } = setup();
    book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg');
    book.clear(1200, ALICE);
    expect(sys.cgroup(1200)).toBe('awg/web');
    expect(sys.exists('awg/web/_limit-1200')).toBe(false);
  });

  it('undo (the run that would apply it failed): the process goes back and the limit is gone', () => {
    const { book, sys, events } = setup();
    const r = book.set({ pid: 1300, upload: 1e6 }, ROOT, 'awg');
    r.undo();
    expect(sys.cgroup(1300)).toBe('system.slice/backup.service');
    expect(sys.exists('awg/_limit-1300')).toBe(false);
    expect(book.size).toBe(0);
    expect(events.at(-1)).toMatchObject({ action: 'removed', reason: 'failed' });
  });

  it('a run is given only limits whose cgroup sits in a cgroup of its config', () => {
    const { book } = setup();
    book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg');
    book.set({ pid: 1300, download: 1e6 }, ROOT, 'awg');
    expect(book.forRun(config, 'awg').map((l) => l.pid)).toEqual([1200, 1300]);
    // the rule `web` left the config: its limit waits to be given a new cgroup (rehome)
    const noRule = { ...config, rules: [] };
    expect(book.forRun(noRule, 'awg').map((l) => l.pid)).toEqual([1300]);
    expect([...limitParents(config, 'awg')].sort()).toEqual([
      'awg',
      'awg/_exec-direct',
      'awg/_exec-vpn',
      'awg/web',
    ]);
  });
});

describe('LimitBook: room for classes', () => {
  it('runtime limits never make a config invalid: beyond what its own limits leave, the newest wait (reported once)', () => {
    const procs: Proc[] = [];
    for (let i = 0; i < 3; i++)
      procs.push({
        pid: 2000 + i,
        ppid: 1,
        uid: 0,
        exe: '/usr/bin/x',
        comm: 'x',
        cgroup: 'awg/web',
        start: String(200 + i),
      });
    const { book, events } = setup(procs);
    let t = 0;
    const times = () => new Date(Date.UTC(2026, 10, 26, 10, 0, t++)).toISOString();
    for (const pid of [2002, 2000, 2001]) {
      book.set({ pid, download: 1e6 }, ROOT, 'awg');
      // set in this order: 2002 is the oldest
      (book as unknown as { records: Map<number, LimitRecord> }).records.get(pid)!.since = times();
    }
    const full = {
      ...config,
      rules: Array.from({ length: 31 }, (_, i) => ({
        ...config.rules[0]!,
        name: `r${i}`,
        limit: { download: '1Mbit' },
      })),
    };
    // 31 rule limits leave one class: the oldest runtime limit keeps it
    expect(book.forRun(full, 'awg').map((l) => l.pid)).toEqual([]); // their parent awg/web is not in `full`
    const withWeb = { ...full, rules: [...full.rules, config.rules[0]!] };
    expect(book.forRun(withWeb, 'awg').map((l) => l.pid)).toEqual([2002]);
    expect(book.isUnshaped(2000) && book.isUnshaped(2001)).toBe(true);
    const errors = () => events.filter((e) => e.type === 'error');
    expect(errors().map((e) => e.type === 'error' && e.message)).toEqual([
      "the runtime limit of process 2000 is not shaped: the config's limits and older runtime limits take all 32 classes",
      "the runtime limit of process 2001 is not shaped: the config's limits and older runtime limits take all 32 classes",
    ]);
    // the next run: said once
    book.forRun(withWeb, 'awg');
    expect(errors()).toHaveLength(2);
    // room again: all shaped
    expect(book.forRun(config, 'awg').map((l) => l.pid)).toEqual([2000, 2001, 2002]);
    expect(book.isUnshaped(2000)).toBe(false);
  });
});

describe('LimitBook: ends, restarts, reused pids', () => {
  it('ends when its cgroup empties: the watch asks for a run; expire() drops it and removes the cgroup', () => {
    const { book, sys, events, wakes } = setup();
    book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg');
    sys.add({
      pid: 1202,
      ppid: 1200,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'c',
      cgroup: 'awg/web/_limit-1200',
      start: '125',
    });
    sys.exit(1200);
    sys.watched.get('awg/web/_limit-1200')!();
    // a child still holds it
    expect(wakes()).toBe(0);
    expect(book.expire()).toBe(false);
    sys.exit(1202);
    sys.watched.get('awg/web/_limit-1200')!();
    expect(wakes()).toBe(1);
    expect(book.expire()).toBe(true);
    expect(sys.exists('awg/web/_limit-1200')).toBe(false);
    expect(book.size).toBe(0);
    expect(sys.watched.size).toBe(0);
    expect(events.at(-1)).toMatchObject({ action: 'removed', pid: 1200, reason: 'exited' });
  });

  it('the state directory keeps them (pid and process identity); a new book reads them back', () => {
    const { book, state, make } = setup();
    book.set({ pid: 1200, upload: 2e6 }, ALICE, 'awg');
    const saved = state.get<{ version: number; limits: LimitRecord[] }>(LIMITS_STATE_KEY)!;
    expect(saved.version).toBe(1);
    expect(saved.limits).toEqual([
      expect.objectContaining({
        pid: 1200,
        bootId: BOOT,
        startTime: '120',
        group: 'awg/web/_limit-1200',
      }),
    ]);
    expect(make().list()).toEqual(book.list());
    book.clear(1200, ALICE);
    expect(state.get(LIMITS_STATE_KEY)).toBeUndefined();
  });

  it('after a restart whose teardown removed the cgroups: the live process gets a new one with the children that sat with it', () => {
    const { book, sys, state, make } = setup();
    book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg');
    sys.add({
      pid: 1202,
      ppid: 1200,
      uid: 1000,
      exe: '/usr/bin/firefox',
      comm: 'c',
      cgroup: 'awg/web/_limit-1200',
      start: '125',
    });
    // the stopping daemon's teardown moved everything up and removed the cgroups; the new run
    // made awg/web again and the placer put both back into the rule's cgroup
    sys.groups.delete('awg/web/_limit-1200');
    for (const pid of [1200, 1202]) sys.procs.get(pid)!.cgroup = 'awg/web';
    book.close();
    const events: DaemonEvent[] = [];
    const again = new LimitBook({
      state,
      system: () => sys,
      selfPid: DAEMON,
      emit: (e) => events.push(e),
      onMaybeEmpty: () => {},
    });
    expect(again.forRun(config, 'awg')).toEqual([]);
    // not expired: its process lives
    expect(again.expire()).toBe(false);
    expect(again.rehome('awg')).toBe(true);
    expect(sys.cgroup(1200)).toBe('awg/web/_limit-1200');
    expect(sys.cgroup(1202)).toBe('awg/web/_limit-1200');
    // 1201 was forked before the limit was set: not born in its cgroup, so not moved into it
    expect(sys.cgroup(1201)).toBe('awg/web');
    expect(again.forRun(config, 'awg')).toEqual([
      { pid: 1200, group: 'awg/web/_limit-1200', download: 1e6 },
    ]);
    expect(events).toEqual([
      expect.objectContaining({ action: 'added', pid: 1200, reason: 'restored' }),
    ]);
    expect(make().list()[0]!.group).toBe('awg/web/_limit-1200');
  });

  it('a pid reused by another process is never limited: dropped at the next run, the new process untouched', () => {
    const { book, sys, state } = setup();
    book.set({ pid: 1300, download: 1e6 }, ROOT, 'awg');
    book.close();
    // reboot-free reuse: the limited process exited, its cgroup went with the teardown, and pid
    // 1300 now names another program
    sys.groups.delete('awg/_limit-1300');
    sys.add({
      pid: 1300,
      ppid: 1,
      uid: 0,
      exe: '/usr/bin/other',
      comm: 'other',
      cgroup: 'system.slice',
      start: '999',
    });
    const events: DaemonEvent[] = [];
    const again = new LimitBook({
      state,
      system: () => sys,
      selfPid: DAEMON,
      emit: (e) => events.push(e),
      onMaybeEmpty: () => {},
    });
    expect(again.forRun(config, 'awg')).toEqual([]);
    expect(again.expire()).toBe(true);
    expect(again.rehome('awg')).toBe(false);
    expect(sys.cgroup(1300)).toBe('system.slice');
    expect(again.size).toBe(0);
    expect(events).toEqual([
      expect.objectContaining({ action: 'removed', pid: 1300, reason: 'exited' }),
    ]);
  });

  it('a reused pid asked for again: the old limit’s cgroup, while it still holds children, is not taken over', () => {
    const { book, sys } = setup();
    book.set({ pid: 1300, download: 1e6 }, ROOT, 'awg');
    sys.add({
      pid: 1301,
      ppid: 1300,
      uid: 0,
      exe: '/usr/bin/ssh',
      comm: 'ssh',
      cgroup: 'awg/_limit-1300',
      start: '131',
    });
    sys.exit(1300);
    sys.add({
      pid: 1300,
      ppid: 1,
      uid: 0,
      exe: '/usr/bin/other',
      comm: 'other',
      cgroup: 'system.slice',
      start: '999',
    });
    expect(fail(() => book.set({ pid: 1300, download: 2e6 }, ROOT, 'awg')).kind).toBe('conflict');
    expect(sys.cgroup(1300)).toBe('system.slice');
    // once the old children are gone, the new process may be limited afresh
    sys.exit(1301);
    book.set({ pid: 1300, download: 2e6 }, ROOT, 'awg');
    expect(book.list()[0]).toMatchObject({ pid: 1300, path: '/usr/bin/other', download: 2e6 });
  });

  it('awg down ends every limit (the teardown removes the cgroups)', () => {
    const { book, events, state } = setup();
    book.set({ pid: 1200, download: 1e6 }, ALICE, 'awg');
    book.set({ pid: 1300, download: 1e6 }, ROOT, 'awg');
    book.forget();
    expect(book.size).toBe(0);
    expect(state.get(LIMITS_STATE_KEY)).toBeUndefined();
    expect(events.filter((e) => e.type === 'limit' && e.action === 'removed')).toEqual([
      expect.objectContaining({ pid: 1200, reason: 'down' }),
      expect.objectContaining({ pid: 1300, reason: 'down' }),
    ]);
  });

  it('a record of the wrong shape is set aside, not trusted', () => {
    const state = new MemoryStateStore();
    state.set(LIMITS_STATE_KEY, { version: 1, limits: [{ pid: 'x' }] });
    const { book } = setup([], state);
    expect(book.size).toBe(0);
    expect(state.corrupt.map((c) => c.key)).toEqual([LIMITS_STATE_KEY]);
  });
});
