/**
 * `awg placer` without a kernel: the child's message loop over a fake /proc + cgroupfs +
 * connector, and its exec gate over a fake fanotify.
 */
import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import { E } from '../../../src/native/libc.js';
import { AwgError } from '../../../src/errors.js';
import type { ProcEvent } from '../../../src/procs/connector.js';
import type { CgroupWriter } from '../../../src/procs/placer.js';
import type { ProcFs } from '../../../src/procs/scan.js';
import {
  PlacerChild,
  type GateAccess,
  type PlacerChildDeps,
} from '../../../src/procs/placer-child.js';
import type { FanotifyEvent } from '../../../src/native/fanotify.js';
import { encode, type FromPlacer, type ToPlacer } from '../../../src/procs/placer-protocol.js';
import { MOUNT, rule, WORK, FF, FF2 } from './placer-fixtures.js';

/** /proc and cgroupfs in memory (a write moves the process) */
class FakeSystem implements ProcFs, CgroupWriter {
  procs = new Map<number, { ppid: number; exe: string; cgroup: string }>();
  private handles = new Map<number, string>();
  private next = 10;
  constructor(readonly cgroups: Set<string>) {}
  pids = () => [...this.procs.keys()];
  exe = (pid: number) => this.procs.get(pid)?.exe;
  comm = () => 'x';
  ppid = (pid: number) => this.procs.get(pid)?.ppid;
  cgroup = (pid: number) => this.procs.get(pid)?.cgroup;
  open(path: string): number {
    if (!this.cgroups.has(path)) return -E.ENOENT;
    this.handles.set(this.next, path);
    return this.next++;
  }
  write(h: number, pid: number): number {
    const p = this.procs.get(pid);
    if (!p) return -E.ESRCH;
    p.cgroup = `/${this.handles.get(h)!}`;
    return 0;
  }
  close(h: number): void {
    this.handles.delete(h);
  }
}

function childSetup(
  gate?: Partial<Pick<PlacerChildDeps, 'gate' | 'gateOff' | 'gateFiles' | 'now'>>,
) {
  const sys = new FakeSystem(
    new Set(['user.slice', 'awg', 'awg/work', 'awg/ff', 'awg/ff2', 'other', 'other/work']),
  );
  sys.procs.set(1, { ppid: 0, exe: '/sbin/init', cgroup: '/' });
  sys.procs.set(100, { ppid: 1, exe: '/usr/bin/node', cgroup: '/' }); // the daemon
  const sent: FromPlacer[] = [];
  let listener: ((evs: ProcEvent[]) => void) | undefined;
  const conn = {
    stats: { received: 0, overruns: 0, unfiltered: 0 },
    closed: 0,
    listen: (cb: (evs: ProcEvent[]) => void) => void (listener = cb),
    close: () => void conn.closed++,
  };
  const child = new PlacerChild({
    send: (m) => sent.push(m),
    openConnector: () => conn,
    placer: { writer: sys, procfs: sys },
    rssKb: () => 42,
    ...gate,
  });
  child.start();
  const exec = (pid: number, exe: string) => {
    sys.procs.set(pid, { ppid: 1, exe, cgroup: '/user.slice' });
    listener?.([{ type: 'exec', ts: 1n, pid, tgid: pid }]);
  };
  const config = (rules: Rule[], extra: Partial<Extract<ToPlacer, { type: 'config' }>> = {}) =>
    child.handleLine(
      encode({
        type: 'config',
        rules,
        cgroupRoot: 'awg',
        mount: MOUNT,
        down: [],
        ownPid: 100,
        ...extra,
      }),
    );
  const lastStats = () =>
    sent.filter((m) => m.type === 'stats').at(-1) as Extract<FromPlacer, { type: 'stats' }>;
  return { sys, sent, conn, child, exec, config, lastStats };
}

describe('placer child message loop', () => {
  it('places on EXEC once configured; a rule change re-places; down fails over; a stats request with an id is always answered', () => {
    const t = childSetup();
    t.exec(200, '/opt/work/app'); // before any config: nothing listens yet
    expect(t.sys.cgroup(200)).toBe('/user.slice');
    t.config([WORK, FF, FF2]);
    expect(t.sys.cgroup(200)).toBe('/awg/work'); // the initial rescan
    t.exec(201, '/usr/bin/firefox');
    expect(t.sys.cgroup(201)).toBe('/awg/ff');
    t.child.handleLine('{"type":"down","down":["vpn2"]}');
    expect(t.sys.cgroup(201)).toBe('/awg/ff2');
    t.child.handleLine('{"type":"down","down":[]}');
    expect(t.sys.cgroup(201)).toBe('/awg/ff');
    t.config([FF2]);
    expect(t.sys.cgroup(201)).toBe('/awg/ff2');
    expect(t.sys.cgroup(200)).toBe('/user.slice'); // no rule left: back where the scan found it
    t.child.handleLine('{"type":"stats","id":7}');
    t.child.handleLine('{"type":"stats","id":8}');
    const st = t.sent.filter((m) => m.type === 'stats');
    expect(st.map((m) => (m as { id?: number }).id)).toEqual([7, 8]);
    expect(t.lastStats()).toMatchObject({ execs: 1, rescans: 4, rssKb: 42 });
  });

  it('periodic stats are sent only when something changed', () => {
    const t = childSetup();
    t.config([WORK]);
    t.child.sendStats();
    t.child.sendStats();
    expect(t.sent.filter((m) => m.type === 'stats')).toHaveLength(1);
    t.exec(300, '/opt/work/x');
    t.child.sendStats();
    expect(t.sent.filter((m) => m.type === 'stats')).toHaveLength(2);
    expect(t.lastStats().placed).toBe(1);
  });

  it('placement errors are reported per kind that counted, naming the kind, each kind at most once a minute', () => {
    let clock = 1_000_000;
    const t = childSetup({ now: () => clock });
    t.config([WORK, FF]);
    const errors = () =>
      t.sent.filter((m) => m.type === 'error') as Extract<FromPlacer, { type: 'error' }>[];
    t.child.sendStats();
    expect(errors()).toEqual([]);
    const write = t.sys.write.bind(t.sys);
    t.sys.write = () => -E.EACCES;
    t.exec(600, '/opt/work/x');
    t.exec(601, '/opt/work/y');
    t.sys.write = write;
    t.sys.cgroups.delete('awg/ff');
    t.exec(602, '/usr/bin/firefox');
    t.child.sendStats();
    expect(errors()).toEqual([
      {
        type: 'error',
        kind: 'driver',
        message:
          "placement error missingCgroup (1 more, 1 in all): not placed, the rule's cgroup awg/ff does not exist (yet)",
      },
      {
        type: 'error',
        kind: 'permission',
        message:
          'placement error writeFailed (2 more, 2 in all): moving a process into awg/work failed: EACCES',
      },
    ]);
    expect(t.lastStats()).toMatchObject({ errors: 2, missingCgroup: 1 });
    // nothing new: no report
    t.child.sendStats();
    t.child.handleLine('{"type":"stats","id":3}');
    expect(errors()).toHaveLength(2);
    // counting on within the minute: status has it, the next report waits
    t.exec(603, '/usr/bin/firefox');
    t.exec(604, '/usr/bin/firefox');
    t.child.sendStats();
    expect(errors()).toHaveLength(2);
    expect(t.lastStats()).toMatchObject({ missingCgroup: 3 });
    clock += 60_000;
    t.child.sendStats();
    expect(errors()).toHaveLength(3);
    expect(errors()[2]!.message).toMatch(/^placement error missingCgroup \(2 more, 3 in all\)/);
  });

  it('another cgroup root: processes leave the old one first, counters keep counting', () => {
    const t = childSetup();
    t.config([WORK]);
    t.exec(400, '/opt/work/x');
    expect(t.sys.cgroup(400)).toBe('/awg/work');
    t.config([WORK], { cgroupRoot: 'other' });
    expect(t.sys.cgroup(400)).toBe('/other/work');
    t.child.handleLine('{"type":"stats","id":1}');
    // placed: exec into awg/work, back to the scan origin, into other/work
    expect(t.lastStats().placed).toBe(3);
  });

  it('reports bad input and bad rules as errors and keeps going; close() closes the connector', () => {
    const t = childSetup();
    t.child.handleLine('{"type":"bogus"}');
    t.config(
      [rule({ name: 'bad', match: { regex: 'x' }, target: 'vpn' })].map((r) => ({
        ...r,
        match: { regex: '(' },
      })) as Rule[],
    );
    expect(
      t.sent.filter((m) => m.type === 'error').map((m) => (m as { kind: string }).kind),
    ).toEqual(['bug', 'invalid-config']);
    t.config([WORK]);
    t.exec(500, '/opt/work/x');
    expect(t.sys.cgroup(500)).toBe('/awg/work');
    t.child.close();
    expect(t.conn.closed).toBe(1);
  });
});

/** fanotify in memory: groups record their marks and answers; events are queued by the test */
class FakeFanotify implements GateAccess {
  groups: {
    fd: number;
    marks: string[];
    queue: FanotifyEvent[];
    allowed: FanotifyEvent[];
    closed: boolean;
    watched: () => void;
  }[] = [];
  refuse: string | undefined;
  badMark = new Set<string>();
  mounts = [
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '40 27 0:40 / /opt/work rw,relatime - xfs /dev/vdb rw',
    '41 27 0:41 / /tmp rw,nosuid,noexec - tmpfs tmpfs rw',
    '22 27 0:22 / /proc rw - proc proc rw',
  ].join('\n');
  open(): ReturnType<GateAccess['open']> {
    if (this.refuse) throw new AwgError('permission', this.refuse);
    const g = {
      fd: 900 + this.groups.length,
      marks: [] as string[],
      queue: [] as FanotifyEvent[],
      allowed: [] as FanotifyEvent[],
      closed: false,
      watched: () => {},
    };
    this.groups.push(g);
    return {
      fd: g.fd,
      markFilesystem: (path: string) => {
        if (this.badMark.has(path)) throw new AwgError('driver', `fanotify_mark ${path}: errno 22`);
        g.marks.push(path);
      },
      readEvents: () => g.queue.splice(0),
      allow: (ev: FanotifyEvent) => void g.allowed.push(ev),
      deny: () => {
        throw new Error('not expected');
      },
      close: () => void (g.closed = true),
    };
  }
  mountinfo = () => this.mounts;
  watch(fd: number, cb: () => void) {
    const g = this.groups.find((x) => x.fd === fd)!;
    g.watched = cb;
    return { close: () => void (g.watched = () => {}) };
  }
  /** an exec of `file` by `pid` arrives on the newest group */
  exec(pid: number, fd: number) {
    const g = this.groups.at(-1)!;
    g.queue.push({ mask: 0x40000n, fd, pid });
    g.watched();
  }
}

describe('placer child: the exec gate', () => {
  it('marks what the rules need, places a held exec before answering, re-marks on a rule change (new group first), closes with no rules', () => {
    const fan = new FakeFanotify();
    const fdPaths = new Map([[7, '/opt/work/bin/tool']]);
    const t = childSetup({
      gate: fan,
      gateFiles: {
        pathOf: (ev) => fdPaths.get(ev.fd),
        head: () => Buffer.alloc(0),
        idOfFd: () => undefined,
        idOfPath: () => undefined,
      },
    });
    t.config([WORK]);
    expect(fan.groups).toHaveLength(1);
    expect(fan.groups[0]!.marks).toEqual(['/opt/work']);
    expect(t.sent.filter((m) => m.type === 'gate')).toEqual([
      { type: 'gate', state: 'gated', scope: 'trees', marks: ['/opt/work'] },
    ]);
    // held exec: /proc still shows the shell; the event's fd names the program
    t.sys.procs.set(600, { ppid: 1, exe: '/usr/bin/dash', cgroup: '/user.slice' });
    fan.exec(600, 7);
    expect(t.sys.cgroup(600)).toBe('/awg/work');
    expect(fan.groups[0]!.allowed.map((e) => e.pid)).toEqual([600]);
    // a name rule needs every file system an exec can come from: a new group, marked before the old closes
    t.config([WORK, FF]);
    expect(fan.groups).toHaveLength(2);
    expect(fan.groups[1]!.marks).toEqual(['/', '/opt/work']);
    expect(fan.groups[0]!.closed).toBe(true);
    expect(t.sent.filter((m) => m.type === 'gate').at(-1)).toMatchObject({
      state: 'gated',
      scope: 'all',
    });
    // the same marks again: nothing reopened
    t.config([FF, WORK]);
    expect(fan.groups).toHaveLength(2);
    t.config([]);
    expect(fan.groups[1]!.closed).toBe(true);
    t.child.close();
  });

  it('unavailable (refused, switched off, a mark refused): best-effort with the reason, and the watcher still places', () => {
    const fan = new FakeFanotify();
    fan.refuse = 'fanotify_init: errno 1 (needs CAP_SYS_ADMIN)';
    const t = childSetup({ gate: fan });
    t.config([WORK]);
    expect(t.sent.filter((m) => m.type === 'gate')).toEqual([
      {
        type: 'gate',
        state: 'best-effort',
        reason: 'exec gate unavailable: fanotify_init: errno 1 (needs CAP_SYS_ADMIN)',
        marks: [],
      },
    ]);
    t.exec(601, '/opt/work/x');
    expect(t.sys.cgroup(601)).toBe('/awg/work');
    const off = childSetup({ gateOff: 'the exec gate is switched off (AWG_EXEC_GATE=0)' });
    off.config([WORK]);
    expect(off.sent.find((m) => m.type === 'gate')).toMatchObject({
      state: 'best-effort',
      reason: 'the exec gate is switched off (AWG_EXEC_GATE=0)',
    });
    const part = new FakeFanotify();
    part.badMark.add('/opt/work');
    const p = childSetup({ gate: part });
    p.config([FF]);
    expect(p.sent.find((m) => m.type === 'gate')).toMatchObject({
      state: 'best-effort',
      marks: ['/'],
      reason: 'some file systems are not gated: fanotify_mark /opt/work: errno 22',
    });
  });
});
