/**
 * `awg placer` without a kernel: the line framing and message validation, the child's message
 * loop over a fake /proc + cgroupfs + connector, and the daemon-side handle driving a fake
 * child (config on start, deltas, flush, stats over restarts, backoff, fatal errors, close).
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
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
import { LONG_RUNNING_NODE_FLAGS } from '../../../src/util/node-flags.js';
import {
  LineDecoder,
  encode,
  parseFromPlacer,
  parseToPlacer,
  zeroStats,
  type FromPlacer,
  type ToPlacer,
} from '../../../src/procs/placer-protocol.js';
import {
  defaultPlacerCommand,
  spawnPlacerProcess,
  type PlacerChildProcess,
  type Timers,
} from '../../../src/procs/placer-process.js';

const MOUNT = { mountPoint: '/sys/fs/cgroup/unified', root: '/' };
const rule = (r: Record<string, unknown>) => Rule.parse(r);
const WORK = rule({ name: 'work', match: { dir: '/opt/work' }, target: 'vpn' });
const FF = rule({ name: 'ff', match: { name: 'firefox' }, target: 'vpn2', fallback: 'failover' });
const FF2 = rule({ name: 'ff2', match: { regex: 'fire' }, target: 'direct' });

describe('placer protocol framing', () => {
  it('splits lines across chunks, keeps split UTF-8 characters, skips blank lines', () => {
    const lines: string[] = [];
    const d = new LineDecoder((l) => lines.push(l));
    const bytes = Buffer.from('{"a":"ü"}\n\n{"b":1}\n{"c"', 'utf8');
    const cut = bytes.indexOf(0xc3) + 1; // inside the two bytes of ü
    d.push(bytes.subarray(0, cut));
    expect(lines).toEqual([]);
    d.push(bytes.subarray(cut));
    expect(lines).toEqual(['{"a":"ü"}', '{"b":1}']);
    expect(d.rest()).toBe('{"c"');
    d.push(':2}\n');
    expect(lines.at(-1)).toBe('{"c":2}');
  });

  it('drops an overlong line (also one that grows without a newline) and resumes after it', () => {
    const lines: string[] = [];
    const long: number[] = [];
    const d = new LineDecoder(
      (l) => lines.push(l),
      (n) => long.push(n),
      8,
    );
    d.push('123456789');
    d.push('0abc\nok\n');
    d.push('123456789012\nfine\n');
    expect(lines).toEqual(['ok', 'fine']);
    expect(long).toEqual([9, 12]);
  });

  it('validates messages to the placer', () => {
    const cfg: ToPlacer = {
      type: 'config',
      rules: [WORK],
      cgroupRoot: 'awg',
      mount: MOUNT,
      down: ['vpn'],
      ownPid: 7,
    };
    expect(parseToPlacer(encode(cfg).trim())).toEqual(cfg);
    expect(parseToPlacer('{"type":"stats","id":3}')).toEqual({ type: 'stats', id: 3 });
    expect(parseToPlacer('{"type":"rescan"}')).toEqual({ type: 'rescan' });
    for (const bad of [
      'nope',
      '[]',
      '{"type":"x"}',
      '{"type":"down","down":[1]}',
      '{"type":"stats","id":-1}',
      JSON.stringify({ ...cfg, cgroupRoot: '/abs' }),
      JSON.stringify({ ...cfg, cgroupRoot: 'awg/../x' }),
      JSON.stringify({ ...cfg, rules: [{ name: 'x' }] }),
      JSON.stringify({ ...cfg, mount: { mountPoint: 1 } }),
      JSON.stringify({ ...cfg, ownPid: 0 }),
    ])
      expect(parseToPlacer(bad), bad).toHaveProperty('invalid');
  });

  it('parses what the placer says; unknown lines are not protocol', () => {
    expect(parseFromPlacer('{"type":"ready","pid":5,"fifo":false,"reason":"EPERM"}')).toEqual({
      type: 'ready',
      pid: 5,
      fifo: false,
      reason: 'EPERM',
    });
    const st = {
      type: 'stats',
      id: 2,
      ...zeroStats(),
      placed: 4,
      connector: { received: 9, overruns: 1 },
      rssKb: 100,
    };
    expect(parseFromPlacer(JSON.stringify(st))).toEqual(st);
    expect(parseFromPlacer(JSON.stringify({ ...st, placed: -1 }))).toBeUndefined();
    expect(parseFromPlacer('{"type":"error","kind":"weird","message":"m","fatal":true}')).toEqual({
      type: 'error',
      kind: 'driver',
      message: 'm',
      fatal: true,
    });
    expect(parseFromPlacer('{"type":"placed","pid":9,"execNs":"100","placedNs":"250"}')).toEqual({
      type: 'placed',
      pid: 9,
      execNs: '100',
      placedNs: '250',
    });
    expect(
      parseFromPlacer('{"type":"placed","pid":9,"execNs":"1e3","placedNs":"250"}'),
    ).toBeUndefined();
    expect(parseFromPlacer('Debugger attached.')).toBeUndefined();
  });
});

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

/** a scripted child process: records stdin lines, answers through stdout */
class FakeChild extends EventEmitter implements PlacerChildProcess {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly lines: ToPlacer[] = [];
  killed: (NodeJS.Signals | number | undefined)[] = [];
  ended = false;
  constructor(readonly pid: number) {
    super();
    const d = new LineDecoder((l) => this.lines.push(JSON.parse(l) as ToPlacer));
    this.stdin.on('data', (b: Buffer) => d.push(b));
    this.stdin.on('finish', () => (this.ended = true));
  }
  say(m: FromPlacer | string): void {
    this.stdout.write(typeof m === 'string' ? `${m}\n` : encode(m));
  }
  kill(sig?: NodeJS.Signals | number): boolean {
    this.killed.push(sig);
    return true;
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.emit('exit', code, signal);
  }
}

class FakeTimers implements Timers {
  t = 0;
  pending: { at: number; fn: () => void; id: number }[] = [];
  private id = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.id;
    this.pending.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.pending = this.pending.filter((p) => p.id !== id);
  }
  now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = this.pending.filter((p) => p.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.pending = this.pending.filter((p) => p !== due);
      due.fn();
    }
  }
}

const tick = () => new Promise((r) => setImmediate(r));
const stats = (over: Partial<ReturnType<typeof zeroStats>> = {}, id?: number): FromPlacer => ({
  type: 'stats',
  ...(id !== undefined ? { id } : {}),
  ...zeroStats(),
  ...over,
  connector: { received: 5, overruns: 0 },
  rssKb: 1,
});

function handleSetup() {
  const children: FakeChild[] = [];
  const spawned: { command: string[]; env: NodeJS.ProcessEnv; fd: number }[] = [];
  const timers = new FakeTimers();
  const errors: [string, boolean][] = [];
  const logs: string[] = [];
  const h = spawnPlacerProcess({
    rules: [WORK],
    cgroupRoot: 'awg',
    mount: MOUNT,
    down: new Set(['b', 'a']),
    ownPid: 100,
    connectorFd: 99,
    command: ['/x/node', '/x/awg.js', 'placer'],
    env: { PATH: '/bin', AWG_PROC_CONNECTOR_FD: '7' },
    timers,
    spawn: (command, env, fd) => {
      spawned.push({ command, env, fd });
      const c = new FakeChild(1000 + children.length);
      children.push(c);
      return c;
    },
    onError: (e, fatal) => errors.push([e.message, fatal]),
    onLog: (l) => logs.push(l),
  });
  return { h, children, spawned, timers, errors, logs };
}

describe('placer process handle (fake child)', () => {
  it('starts the child with the connector as fd 3 and sends the whole state; deltas follow', async () => {
    const t = handleSetup();
    await tick();
    expect(t.spawned).toHaveLength(1);
    expect(t.spawned[0]!.fd).toBe(99);
    expect(t.spawned[0]!.env).toMatchObject({
      PATH: '/bin',
      AWG_PROC_CONNECTOR_FD: '3',
      AWG_PLACER_PARENT: String(process.pid),
      AWG_PLACER_PRIORITY: '10',
    });
    const c = t.children[0]!;
    expect(c.lines[0]).toEqual({
      type: 'config',
      rules: [WORK],
      cgroupRoot: 'awg',
      mount: MOUNT,
      down: ['a', 'b'],
      ownPid: 100,
    });
    t.h.setDown(new Set(['a', 'b'])); // unchanged: nothing sent
    t.h.setDown(new Set(['a']));
    t.h.rescan();
    t.h.setRules([WORK, FF], 'awg2');
    await tick();
    expect(c.lines.slice(1)).toEqual([
      { type: 'down', down: ['a'] },
      { type: 'rescan' },
      {
        type: 'config',
        rules: [WORK, FF],
        cgroupRoot: 'awg2',
        mount: MOUNT,
        down: ['a'],
        ownPid: 100,
      },
    ]);
    c.say({ type: 'ready', pid: 1000, fifo: false, reason: 'EPERM' });
    c.say('some stray text');
    c.stderr.write('warn: x\n');
    await tick();
    expect(t.h.state).toBe('ready');
    expect(t.h.info).toMatchObject({ fifo: false, reason: 'EPERM' });
    expect(t.logs).toEqual(['some stray text', 'warn: x']);
  });

  it('flush resolves on the answer with its id; stats add up over restarts; a dead child restarts with growing delays', async () => {
    const t = handleSetup();
    const c0 = t.children[0]!;
    c0.say({ type: 'ready', pid: 1000, fifo: true });
    const f = t.h.flush();
    await tick();
    const req = c0.lines.at(-1) as { type: string; id: number };
    expect(req.type).toBe('stats');
    c0.say(stats({ placed: 1 })); // a periodic report: not the answer
    c0.say(stats({ placed: 3, execs: 4 }, req.id));
    expect((await f).placed).toBe(3);
    t.h.setRules([FF]);
    c0.exit(null, 'SIGKILL');
    expect(t.h.state).toBe('restarting');
    expect(t.errors.at(-1)).toEqual([
      'placer process killed by SIGKILL; restarting in 250 ms',
      false,
    ]);
    t.h.setDown(new Set()); // while no child: kept for the next config
    t.timers.advance(249);
    expect(t.children).toHaveLength(1);
    t.timers.advance(1);
    expect(t.children).toHaveLength(2);
    await tick();
    const c1 = t.children[1]!;
    expect(c1.lines).toEqual([
      { type: 'config', rules: [FF], cgroupRoot: 'awg', mount: MOUNT, down: [], ownPid: 100 },
    ]);
    c1.say(stats({ placed: 2 }));
    await tick();
    expect(t.h.stats.placed).toBe(5);
    expect(t.h.stats.execs).toBe(4);
    expect(t.h.connector.received).toBe(10);
    // never ready: the next delay doubles
    c1.exit(1);
    t.timers.advance(499);
    expect(t.children).toHaveLength(2);
    t.timers.advance(1);
    expect(t.children).toHaveLength(3);
    expect(t.h.restarts).toBe(2);
  });

  it('a pending flush fails when the child dies', async () => {
    const t = handleSetup();
    const f = t.h.flush();
    t.children[0]!.exit(1);
    await expect(f).rejects.toThrow(/exited with code 1/);
  });

  it('a fatal error stops restarts; so do five deaths before ready', async () => {
    const t = handleSetup();
    t.children[0]!.say({
      type: 'error',
      kind: 'unsupported',
      message: 'LISTEN refused',
      fatal: true,
    });
    await tick();
    t.children[0]!.exit(3);
    expect(t.h.state).toBe('failed');
    expect(t.errors).toEqual([['placer process: LISTEN refused', true]]);
    t.timers.advance(60_000);
    expect(t.children).toHaveLength(1);

    const u = handleSetup();
    for (let i = 0; i < 5; i++) {
      u.children.at(-1)!.exit(1);
      u.timers.advance(60_000);
    }
    expect(u.children).toHaveLength(5);
    expect(u.h.state).toBe('failed');
    expect(u.errors.at(-1)![1]).toBe(true);
  });

  it('close ends stdin, kills a child that does not leave, resolves when it is gone; nothing restarts', async () => {
    const t = handleSetup();
    const c = t.children[0]!;
    let closed = false;
    const p = t.h.close().then(() => (closed = true));
    await tick();
    expect(c.ended).toBe(true);
    expect(closed).toBe(false);
    t.timers.advance(3000);
    expect(c.killed).toEqual(['SIGKILL']);
    c.exit(null, 'SIGKILL');
    await p;
    expect(closed).toBe(true);
    expect(t.h.state).toBe('closed');
    t.timers.advance(60_000);
    expect(t.children).toHaveLength(1);
    expect(t.errors).toEqual([]);
  });
});

describe('the placer child', () => {
  it('runs with the Node flags of the long-running processes (1 MiB semi-spaces among them)', () => {
    const cmd = defaultPlacerCommand();
    expect(cmd[0]).toBe(process.execPath);
    expect(cmd.slice(1, 1 + LONG_RUNNING_NODE_FLAGS.length)).toEqual(LONG_RUNNING_NODE_FLAGS);
    expect(cmd.at(-1)).toBe('placer');
    expect(LONG_RUNNING_NODE_FLAGS).toContain('--max-semi-space-size=1');
  });
});
