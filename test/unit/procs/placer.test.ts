import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import { compileRules } from '../../../src/model/match.js';
import { E } from '../../../src/native/libc.js';
import {
  PROC_EVENT,
  buildProcEvent,
  parseProcMessage,
  type ProcEvent,
} from '../../../src/procs/connector.js';
import {
  classifyCgroup,
  execCgroupPath,
  limitCgroupPath,
  relativeCgroup,
  splitLimit,
} from '../../../src/procs/cgroups.js';
import { ProcessPlacer, type CgroupWriter } from '../../../src/procs/placer.js';
import { descendants, parseCgroupV2, parseStatPpid, type ProcFs } from '../../../src/procs/scan.js';

interface FakeProc {
  ppid: number;
  exe?: string;
  comm?: string;
  cgroup?: string;
}

/** /proc and cgroupfs in memory: a write moves the fake process like the kernel would */
class FakeSystem implements ProcFs, CgroupWriter {
  procs = new Map<number, FakeProc>();
  cgroups = new Set<string>();
  private handles = new Map<number, string>();
  private next = 10;
  writes: [string, number][] = [];
  opens = 0;
  constructor(cgroups: string[]) {
    for (const c of cgroups) this.cgroups.add(c);
  }
  add(pid: number, p: FakeProc): this {
    this.procs.set(pid, p);
    return this;
  }
  pids = () => [...this.procs.keys()];
  exe = (pid: number) => this.procs.get(pid)?.exe;
  comm = (pid: number) => this.procs.get(pid)?.comm ?? 'x';
  ppid = (pid: number) => this.procs.get(pid)?.ppid;
  cgroup = (pid: number) => this.procs.get(pid)?.cgroup;
  open(path: string): number {
    this.opens++;
    if (!this.cgroups.has(path)) return -E.ENOENT;
    const h = this.next++;
    this.handles.set(h, path);
    return h;
  }
  write(h: number, pid: number): number {
    const path = this.handles.get(h)!;
    if (!this.cgroups.has(path)) return -E.ENODEV;
    const p = this.procs.get(pid);
    if (!p) return -E.ESRCH;
    this.writes.push([path, pid]);
    p.cgroup = `/${path}`;
    return 0;
  }
  close(h: number): void {
    this.handles.delete(h);
  }
  /** the cgroups whose cgroup.procs is open, sorted */
  openHandles(): string[] {
    return [...this.handles.values()].sort();
  }
}

const ROOT = 'awg';
const rules = (...rs: Record<string, unknown>[]) => compileRules(rs.map((r) => Rule.parse(r)));
const R1 = rules(
  { name: 'work', match: { dir: '/opt/work' }, target: 'vpn' },
  { name: 'ff', match: { name: 'firefox' }, target: 'vpn2', fallback: 'failover' },
  { name: 'ff2', match: { regex: 'fire' }, target: 'direct' },
);
const SELF = 1000;

function setup(extra: string[] = []) {
  const sys = new FakeSystem([ROOT, `${ROOT}/work`, `${ROOT}/ff`, `${ROOT}/ff2`, ...extra]);
  sys.add(1, { ppid: 0, exe: '/sbin/init', cgroup: '/' });
  sys.add(SELF, { ppid: 1, exe: '/usr/bin/node', cgroup: '/system.slice/awg.service' });
  const placed: number[] = [];
  const placer = new ProcessPlacer({
    matcher: R1,
    cgroupRoot: ROOT,
    mount: { mountPoint: '/sys/fs/cgroup/unified', root: '/' },
    writer: sys,
    procfs: sys,
    selfPid: SELF,
    onPlaced: (p) => placed.push(p.pid),
  });
  return { sys, placer, placed };
}
const exec = (pid: number, ts = 1n): ProcEvent =>
  parseProcMessage(buildProcEvent(PROC_EVENT.EXEC, ts, [pid, pid]))!;
const fork = (parent: number, child: number, childTgid = child): ProcEvent =>
  parseProcMessage(buildProcEvent(PROC_EVENT.FORK, 1n, [parent, parent, child, childTgid]))!;

describe('ProcessPlacer on EXEC events', () => {
  it('writes a matching process into its rule cgroup, once per event, keeping one fd per cgroup', () => {
    const { sys, placer, placed } = setup();
    sys.add(50, { ppid: 1, exe: '/opt/work/bin/tool', cgroup: '/user.slice' });
    sys.add(51, { ppid: 1, exe: '/opt/work/other', cgroup: '/user.slice' });
    sys.add(52, { ppid: 1, exe: '/usr/bin/ls', cgroup: '/user.slice' });
    placer.handleEvents([exec(50), exec(51), exec(52)]);
    expect(sys.writes).toEqual([
      [`${ROOT}/work`, 50],
      [`${ROOT}/work`, 51],
    ]);
    expect(sys.opens).toBe(1);
    expect(placed).toEqual([50, 51]);
    expect(placer.stats).toMatchObject({ execs: 3, placed: 2, misses: 1, esrch: 0 });
  });

  it('first enabled rule wins; an exec of a process already in place or in an awg exec cgroup writes nothing', () => {
    const { sys, placer } = setup([execCgroupPath(ROOT, 'vpn')]);
    sys.add(60, { ppid: 1, exe: '/usr/lib/firefox', cgroup: '/user.slice' });
    sys.add(61, { ppid: 60, exe: '/usr/lib/firefox', cgroup: `/${ROOT}/ff` });
    sys.add(62, { ppid: 1, exe: '/usr/lib/firefox', cgroup: `/${ROOT}/_exec-vpn` });
    placer.handleEvents([exec(60), exec(61), exec(62)]);
    expect(sys.writes).toEqual([[`${ROOT}/ff`, 60]]);
    expect(placer.stats).toMatchObject({ placed: 1, kept: 2 });
  });

  it('a process limited at run time (below its rule cgroup) is in place: its exec, and its children’s, write nothing', () => {
    const lim = limitCgroupPath(`${ROOT}/ff`, 63);
    const { sys, placer } = setup([lim, limitCgroupPath(ROOT, 64)]);
    sys.add(63, { ppid: 1, exe: '/usr/lib/firefox', cgroup: `/${lim}` });
    sys.add(65, { ppid: 63, exe: '/usr/lib/firefox', cgroup: `/${lim}` });
    // limited outside any rule (below the root), it execs a program a rule matches: it moves to
    // that rule's cgroup and leaves the limit (docs/limits.md)
    sys.add(64, { ppid: 1, exe: '/opt/work/tool', cgroup: `/${ROOT}/_limit-64` });
    placer.handleEvents([exec(63), exec(65), exec(64)]);
    expect(sys.writes).toEqual([[`${ROOT}/work`, 64]]);
    expect(placer.stats).toMatchObject({ placed: 1, kept: 2 });
  });

  it('ignores its own process tree, tracked through FORK events (threads skipped, reused pids dropped)', () => {
    const { sys, placer } = setup();
    sys.add(70, { ppid: SELF, exe: '/opt/work/engine', cgroup: '/system.slice/awg.service' });
    sys.add(71, { ppid: 70, exe: '/opt/work/engine', cgroup: '/system.slice/awg.service' });
    placer.handleEvents([fork(SELF, 70), exec(70), fork(70, 71), exec(71)]);
    expect(sys.writes).toEqual([]);
    expect(placer.stats.ownTree).toBe(2);
    // a thread of an outside process (pid ≠ tgid) does not change the tree
    placer.handleEvents([fork(5, 72, 5)]);
    // pid 70 exits and is reused by an unrelated process
    sys.add(70, { ppid: 1, exe: '/opt/work/engine', cgroup: '/user.slice' });
    placer.handleEvents([fork(1, 70), exec(70)]);
    expect(sys.writes).toEqual([[`${ROOT}/work`, 70]]);
  });

  it('counts ESRCH (gone before the read or the write) and a missing cgroup, then recovers', () => {
    const { sys, placer } = setup();
    placer.handleEvents([exec(80)]); // never existed
    sys.add(81, { ppid: 1, exe: '/opt/work/x', cgroup: '/' });
    const writer = sys.write.bind(sys);
    sys.write = (h, pid) => (pid === 81 ? -E.ESRCH : writer(h, pid));
    placer.handleEvents([exec(81)]);
    expect(placer.stats).toMatchObject({ vanished: 1, esrch: 1, placed: 0 });
    sys.write = writer;
    sys.cgroups.delete(`${ROOT}/work`);
    placer.handleEvents([exec(81)]);
    expect(placer.stats.missingCgroup).toBe(1);
    expect(placer.failures).toEqual({ missingCgroup: { cgroup: `${ROOT}/work` } });
    sys.cgroups.add(`${ROOT}/work`);
    placer.handleEvents([exec(81)]);
    expect(sys.writes).toEqual([[`${ROOT}/work`, 81]]);
  });

  it('a failed write is counted apart from a missing cgroup, with its errno and cgroup', () => {
    const { sys, placer } = setup();
    sys.add(82, { ppid: 1, exe: '/opt/work/x', cgroup: '/' });
    const writer = sys.write.bind(sys);
    sys.write = () => -E.EACCES;
    placer.handleEvents([exec(82)]);
    // the cgroup removed under its open fd twice in a row: a failure, not a missing cgroup
    sys.write = () => -E.ENODEV;
    placer.handleEvents([exec(82)]);
    expect(placer.stats).toMatchObject({ errors: 2, missingCgroup: 0, placed: 0 });
    expect(placer.failures).toEqual({ writeFailed: { cgroup: `${ROOT}/work`, errno: 'ENODEV' } });
    sys.write = writer;
    placer.handleEvents([exec(82)]);
    expect(placer.stats).toMatchObject({ errors: 2, placed: 1 });
  });

  it('new rules: the descriptors of cgroups no rule uses any more are closed (a removed rule’s, the root a rescan wrote to)', () => {
    const { sys, placer } = setup();
    sys.add(95, { ppid: 1, exe: '/opt/work/x', cgroup: '/user.slice' });
    sys.add(96, { ppid: 1, exe: '/usr/lib/firefox', cgroup: '/user.slice' });
    placer.handleEvents([exec(95), exec(96)]);
    expect(sys.openHandles()).toEqual([`${ROOT}/ff`, `${ROOT}/work`]);
    // `work` is removed: its process goes to the root (placed on exec: no origin known), and
    // neither the rule's fd nor the root's stays open
    placer.setRules(rules({ name: 'ff', match: { name: 'firefox' }, target: 'vpn2' }));
    expect(sys.writes.at(-1)).toEqual([ROOT, 95]);
    expect(sys.openHandles()).toEqual([`${ROOT}/ff`]);
    // the rule comes back: its cgroup is opened again on its next placement
    placer.setRules(R1);
    sys.add(97, { ppid: 1, exe: '/opt/work/y', cgroup: '/user.slice' });
    placer.handleEvents([exec(97)]);
    expect(sys.writes.at(-1)).toEqual([`${ROOT}/work`, 97]);
    expect(sys.openHandles()).toEqual([`${ROOT}/ff`, `${ROOT}/work`]);
    placer.close();
    expect(sys.openHandles()).toEqual([]);
  });

  it('reopens the fd when the cgroup was removed and recreated (ENODEV on the old one)', () => {
    const { sys, placer } = setup();
    sys.add(90, { ppid: 1, exe: '/opt/work/x', cgroup: '/' });
    sys.add(91, { ppid: 1, exe: '/opt/work/y', cgroup: '/' });
    placer.handleEvents([exec(90)]);
    // removed and created again: the old handle answers ENODEV
    const path = `${ROOT}/work`;
    const origWrite = sys.write.bind(sys);
    let first = true;
    sys.write = (h, pid) => {
      if (first) {
        first = false;
        return -E.ENODEV;
      }
      return origWrite(h, pid);
    };
    placer.handleEvents([exec(91)]);
    expect(sys.writes).toEqual([
      [path, 90],
      [path, 91],
    ]);
    expect(sys.opens).toBe(2);
    expect(placer.stats.errors).toBe(0);
  });
});

describe('ProcessPlacer.placeGated (the exec gate decides while the exec is held)', () => {
  it('places a match before the program runs; its EXEC event then writes nothing; a miss changes nothing', () => {
    const { sys, placer, placed } = setup();
    // held: /proc still shows the shell that asked for the exec
    sys.add(90, { ppid: 1, exe: '/usr/bin/dash', cgroup: '/user.slice' });
    sys.add(91, { ppid: 1, exe: '/usr/bin/dash', cgroup: '/user.slice' });
    expect(placer.placeGated(90, '/opt/work/bin/curl', true)).toBe('placed');
    expect(placer.placeGated(91, '/usr/bin/ls', true)).toBe('miss');
    expect(sys.writes).toEqual([[`${ROOT}/work`, 90]]);
    expect(placed).toEqual([90]);
    sys.procs.get(90)!.exe = '/opt/work/bin/curl';
    placer.handleEvents([exec(90)]);
    expect(sys.writes).toHaveLength(1);
    expect(placer.stats).toMatchObject({ execs: 1, gated: 1, placed: 1 });
    // the next exec of that pid is the watcher's again
    placer.handleEvents([exec(90)]);
    expect(placer.stats).toMatchObject({ gated: 1, kept: 1 });
  });

  it('a match it cannot place: `deny` for a block/drop rule (fail closed), `failed` for the others', () => {
    const { sys, placer } = setup();
    sys.cgroups.delete(`${ROOT}/work`);
    sys.cgroups.delete(`${ROOT}/ff`);
    sys.add(96, { ppid: 1, exe: '/usr/bin/dash', cgroup: '/user.slice' });
    expect(placer.placeGated(96, '/opt/work/x', true)).toBe('deny'); // work: fallback block (the default)
    expect(placer.placeGated(96, '/usr/bin/firefox', true)).toBe('failed'); // ff: failover
    expect(placer.stats.missingCgroup).toBe(2);
  });

  it('never places our own tree, even a child whose FORK event is not read yet; an awg exec cgroup wins', () => {
    const { sys, placer } = setup([execCgroupPath(ROOT, 'vpn')]);
    sys.add(92, { ppid: SELF, exe: '/usr/bin/node', cgroup: '/system.slice/awg.service' });
    expect(placer.placeGated(92, '/opt/work/nft', true)).toBe('own');
    sys.add(93, { ppid: 92, exe: '/usr/bin/node', cgroup: '/system.slice/awg.service' });
    expect(placer.placeGated(93, '/opt/work/nft', true)).toBe('own');
    sys.add(94, { ppid: 1, exe: '/usr/bin/bash', cgroup: `/${ROOT}/_exec-vpn` });
    expect(placer.placeGated(94, '/opt/work/x', true)).toBe('kept');
    expect(sys.writes).toEqual([]);
  });

  it('a script placed by its own path stays in its rule on rescans, although /proc shows its interpreter', () => {
    const { sys, placer } = setup();
    sys.add(95, { ppid: 1, exe: '/usr/bin/dash', cgroup: '/user.slice' });
    expect(placer.placeGated(95, '/opt/work/run.sh', true)).toBe('placed');
    // after the exec the process runs as the interpreter, which the regex rule `fire` would not match
    sys.procs.get(95)!.exe = '/usr/bin/python3';
    placer.handleEvents([exec(95)]);
    placer.rescan();
    expect(sys.procs.get(95)!.cgroup).toBe(`/${ROOT}/work`);
    // an interpreter a rule matches does not take it over either
    sys.procs.get(95)!.exe = '/usr/bin/firefox';
    placer.rescan();
    expect(sys.procs.get(95)!.cgroup).toBe(`/${ROOT}/work`);
    // once the rule is gone, it goes back where it came from
    placer.setRules(rules({ name: 'other', match: { dir: '/srv' }, target: 'vpn' }));
    expect(sys.procs.get(95)!.cgroup).toBe(`/${ROOT}`);
  });
});

describe('ProcessPlacer.rescan / setRules', () => {
  it('initial scan places matching processes, leaves children that inherited and exec cgroups alone', () => {
    const { sys, placer } = setup([execCgroupPath(ROOT, 'vpn')]);
    sys.add(100, { ppid: 1, exe: '/opt/work/a', cgroup: '/user.slice' });
    sys.add(101, { ppid: 100, exe: '/bin/sh', cgroup: `/${ROOT}/work` }); // inherited
    sys.add(102, { ppid: 1, exe: '/opt/work/b', cgroup: `/${ROOT}/_exec-vpn` }); // explicit
    sys.add(103, { ppid: SELF, exe: '/opt/work/engine', cgroup: '/' }); // our child
    sys.add(104, { ppid: 1 }); // kernel thread: no exe
    sys.add(105, { ppid: 1, exe: '/usr/bin/firefox', cgroup: `/${ROOT}/ff` }); // in place
    placer.rescan();
    expect(sys.writes).toEqual([[`${ROOT}/work`, 100]]);
  });

  it('a rescan leaves limited processes in their limit’s cgroup, below the root or their rule', () => {
    const lim = limitCgroupPath(`${ROOT}/work`, 106);
    const { sys, placer } = setup([lim, limitCgroupPath(ROOT, 107)]);
    sys.add(106, { ppid: 1, exe: '/opt/work/a', cgroup: `/${lim}` });
    sys.add(108, { ppid: 106, exe: '/bin/sh', cgroup: `/${lim}` });
    sys.add(107, { ppid: 1, exe: '/usr/bin/rsync', cgroup: `/${ROOT}/_limit-107` });
    placer.rescan();
    expect(sys.writes).toEqual([]);
  });

  it('rule change re-places: to the new rule, or back to the original cgroup when nothing matches', () => {
    const { sys, placer } = setup();
    sys.add(110, { ppid: 1, exe: '/opt/work/a', cgroup: '/user.slice/u.scope' });
    sys.add(111, { ppid: 110, exe: '/bin/sh', cgroup: '/user.slice/u.scope' });
    sys.add(112, { ppid: 1, exe: '/usr/bin/firefox', cgroup: '/user.slice/u.scope' });
    placer.rescan();
    sys.procs.get(111)!.cgroup = `/${ROOT}/work`; // forked after the move: inherited
    expect(sys.writes).toEqual([
      [`${ROOT}/work`, 110],
      [`${ROOT}/ff`, 112],
    ]);
    sys.writes = [];
    sys.cgroups.add(`${ROOT}/tools`);
    sys.cgroups.add('user.slice/u.scope');
    // /opt/work now belongs to `tools`; firefox matches nothing any more; `work` is gone
    placer.setRules(rules({ name: 'tools', match: { path: '/opt/**' }, target: 'vpn' }));
    expect(sys.writes.sort()).toEqual(
      [
        [`${ROOT}/tools`, 110],
        // the inherited child of a rule that no longer exists goes to the awg root
        ['awg', 111],
        // moved by a scan: back where it came from
        ['user.slice/u.scope', 112],
      ].sort(),
    );
  });

  it('a process placed for its own exe leaves when its rule stops matching it; an inherited one stays', () => {
    const { sys, placer } = setup();
    sys.add(120, { ppid: 1, exe: '/opt/work/a', cgroup: `/${ROOT}/work` });
    sys.add(121, { ppid: 120, exe: '/bin/sh', cgroup: `/${ROOT}/work` });
    placer.setRules(rules({ name: 'work', match: { dir: '/opt/other' }, target: 'vpn' }));
    // unknown origin (placed before this placer started): the awg root
    expect(sys.writes).toEqual([['awg', 120]]);
  });
});

describe('ProcessPlacer failover (setDown)', () => {
  it('a failover rule whose tunnel is down passes its processes to their next match, and takes them back when it returns', () => {
    const { sys, placer } = setup();
    sys.add(70, { ppid: 1, exe: '/usr/lib/firefox', cgroup: '/user.slice' });
    sys.add(71, { ppid: 70, exe: '/usr/bin/helper', cgroup: '/user.slice' });
    placer.rescan();
    expect(sys.procs.get(70)!.cgroup).toBe(`/${ROOT}/ff`);
    // an inherited child (own exe matches nothing) stays where its parent put it
    sys.procs.get(71)!.cgroup = `/${ROOT}/ff`;
    placer.setDown(new Set(['vpn2']));
    expect(sys.procs.get(70)!.cgroup).toBe(`/${ROOT}/ff2`);
    expect(sys.procs.get(71)!.cgroup).toBe(`/${ROOT}/ff`);
    // a fresh exec while down goes straight to the next match
    sys.add(72, { ppid: 1, exe: '/usr/lib/firefox', cgroup: '/user.slice' });
    placer.handleEvents([exec(72)]);
    expect(sys.procs.get(72)!.cgroup).toBe(`/${ROOT}/ff2`);
    // the same view again writes nothing
    const n = sys.writes.length;
    placer.setDown(new Set(['vpn2']));
    expect(sys.writes.length).toBe(n);
    placer.setDown(new Set());
    expect(sys.procs.get(70)!.cgroup).toBe(`/${ROOT}/ff`);
    expect(sys.procs.get(72)!.cgroup).toBe(`/${ROOT}/ff`);
  });

  it('a failover rule with no later match keeps its processes (its cgroup is dropped by the firewall); other fallbacks never move anything', () => {
    const { sys, placer } = setup();
    sys.add(80, { ppid: 1, exe: '/opt/work/bin/tool', cgroup: '/user.slice' });
    sys.add(81, { ppid: 1, exe: '/usr/bin/firefox', cgroup: '/user.slice' });
    placer.rescan();
    placer.setDown(new Set(['vpn']));
    expect(sys.procs.get(80)!.cgroup).toBe(`/${ROOT}/work`);
    expect(placer.placeFor('/usr/bin/firefox')?.name).toBe('ff');
    const lone = new ProcessPlacer({
      matcher: rules({ name: 'only', match: { name: 'x' }, target: 'vpn', fallback: 'failover' }),
      cgroupRoot: ROOT,
      mount: { mountPoint: '/m', root: '/' },
      writer: sys,
      procfs: sys,
      selfPid: SELF,
      down: new Set(['vpn']),
    });
    expect(lone.placeFor('/bin/x')?.name).toBe('only');
  });
});

describe('listProcesses', () => {
  it('reports the rule of the cgroup a process sits in, its target and the effective route', () => {
    const { sys, placer } = setup([execCgroupPath(ROOT, 'vpn')]);
    sys.add(130, { ppid: 1, exe: '/opt/work/a', comm: 'a', cgroup: `/${ROOT}/work` });
    sys.add(131, { ppid: 1, exe: '/usr/bin/firefox', comm: 'firefox', cgroup: `/${ROOT}/ff` });
    sys.add(132, { ppid: 1, exe: '/usr/bin/curl', comm: 'curl', cgroup: `/${ROOT}/_exec-vpn` });
    sys.add(133, { ppid: 1, exe: '/usr/bin/ls', comm: 'ls', cgroup: '/' });
    sys.add(134, { ppid: 1, exe: '/opt/work/late', comm: 'late', cgroup: '/' });
    // limited at run time (awg limit): listed although no rule matches it
    sys.add(135, { ppid: 1, exe: '/usr/bin/rsync', comm: 'rsync', cgroup: `/${ROOT}/_limit-135` });
    sys.add(136, { ppid: 1, exe: '/opt/work/b', comm: 'b', cgroup: `/${ROOT}/work/_limit-136` });
    const up = new Set(['vpn']);
    const l = placer.listProcesses({ tunnelUp: (t) => up.has(t), defaultRoute: 'direct' });
    const by = (pid: number) => l.find((p) => p.pid === pid);
    expect(by(130)).toMatchObject({
      name: 'a',
      path: '/opt/work/a',
      rule: 'work',
      target: 'vpn',
      route: 'vpn',
    });
    // vpn2 down, failover → ff2 (direct)
    expect(by(131)).toMatchObject({ rule: 'ff', target: 'vpn2', route: 'direct' });
    expect(by(132)).toMatchObject({ rule: 'exec:vpn', target: 'vpn', route: 'vpn' });
    expect(by(133)).toBeUndefined();
    expect(by(134)).toMatchObject({ route: 'direct', pending: 'work' });
    expect(by(135)).toMatchObject({ route: 'direct', cgroup: `/${ROOT}/_limit-135` });
    expect(by(135)!.rule).toBeUndefined();
    expect(by(136)).toMatchObject({ rule: 'work', target: 'vpn', route: 'vpn' });
    up.delete('vpn');
    const l2 = placer.listProcesses({ tunnelUp: (t) => up.has(t), defaultRoute: 'vpn', all: true });
    expect(l2.find((p) => p.pid === 130)).toMatchObject({ route: 'blocked' });
    expect(l2.find((p) => p.pid === 132)).toMatchObject({ route: 'blocked' });
    expect(l2.find((p) => p.pid === 133)).toMatchObject({ route: 'blocked' });
    expect(l2.find((p) => p.pid === 133)!.rule).toBeUndefined();
  });
});

describe('scan and cgroup helpers', () => {
  it('parses /proc/PID/cgroup (hybrid host) and /proc/PID/stat with a nasty comm', () => {
    expect(parseCgroupV2('9:name=systemd:/\n4:memory:/x\n0::/awg/work\n')).toBe('/awg/work');
    expect(parseCgroupV2('1:cpu:/\n')).toBeUndefined();
    expect(parseStatPpid('42 (a) b (c)) S 17 42 42 0 -1')).toBe(17);
  });

  it('classifies cgroups and strips a container mount root', () => {
    expect(classifyCgroup('awg', 'awg/work/x')).toEqual({ kind: 'rule', name: 'work' });
    expect(classifyCgroup('awg', 'awg/_exec-direct')).toEqual({ kind: 'exec', target: 'direct' });
    expect(classifyCgroup('awg', 'awg')).toEqual({ kind: 'root' });
    expect(classifyCgroup('awg', 'awgx/y')).toEqual({ kind: 'outside' });
    // a runtime limit's cgroup routes as the cgroup it sits in
    expect(classifyCgroup('awg', 'awg/_limit-42')).toEqual({ kind: 'root' });
    expect(classifyCgroup('awg', 'awg/work/_limit-42')).toEqual({ kind: 'rule', name: 'work' });
    expect(classifyCgroup('awg', 'awg/_exec-vpn/_limit-42')).toEqual({
      kind: 'exec',
      target: 'vpn',
    });
    expect(splitLimit('awg/work/_limit-42')).toEqual({ base: 'awg/work', limit: 42 });
    expect(splitLimit('awg/work')).toEqual({ base: 'awg/work' });
    expect(splitLimit('awg/_limit-x')).toEqual({ base: 'awg/_limit-x' });
    expect(splitLimit('awg/_limit-0')).toEqual({ base: 'awg/_limit-0' });
    expect(relativeCgroup('/awg/work')).toBe('awg/work');
    expect(relativeCgroup('/docker/c1/awg/work', '/docker/c1')).toBe('awg/work');
    expect(relativeCgroup('/other', '/docker/c1')).toBeUndefined();
    expect(
      [
        ...descendants(
          [
            { pid: 2, ppid: 1 },
            { pid: 3, ppid: 2 },
            { pid: 4, ppid: 9 },
          ],
          1,
        ),
      ].sort(),
    ).toEqual([1, 2, 3]);
  });
});
