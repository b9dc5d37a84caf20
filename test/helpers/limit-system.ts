/**
 * A LimitSystem (src/daemon/limit-system.ts) over a table: processes with their cgroups, the
 * cgroups that exist; a move changes a process's cgroup as the kernel would. For the unit
 * tests of runtime limits.
 */
import type { LimitSystem } from '../../src/daemon/limit-system.js';

export interface Proc {
  pid: number;
  ppid: number;
  uid: number;
  euid?: number;
  /** undefined: a kernel thread */
  exe?: string;
  comm: string;
  cgroup: string;
  netns?: string;
  start: string;
}

export const BOOT = '0b7a5a4e-0000-4000-8000-000000000001';
/** processes and cgroups in memory; moving a process changes its cgroup */
export class FakeLimitSystem implements LimitSystem {
  readonly procs = new Map<number, Proc>();
  readonly groups = new Set<string>([
    'awg',
    'awg/web',
    'awg/_exec-vpn',
    'system.slice',
    'system.slice/backup.service',
  ]);
  readonly watched = new Map<string, () => void>();
  readonly log: string[] = [];

  constructor(procs: Proc[]) {
    for (const p of procs) this.procs.set(p.pid, p);
  }
  add(p: Proc): void {
    this.procs.set(p.pid, p);
  }
  exit(pid: number): void {
    this.procs.delete(pid);
  }
  identity(pid: number) {
    const p = this.procs.get(pid);
    return p ? { bootId: BOOT, startTime: p.start } : undefined;
  }
  exe(pid: number) {
    return this.procs.get(pid)?.exe;
  }
  comm(pid: number) {
    return this.procs.get(pid)?.comm;
  }
  uids(pid: number) {
    const p = this.procs.get(pid);
    return p ? { real: p.uid, effective: p.euid ?? p.uid } : undefined;
  }
  netns(pid: number | 'self') {
    if (pid === 'self') return 'net:[4026531840]';
    const p = this.procs.get(pid);
    return p ? (p.netns ?? 'net:[4026531840]') : undefined;
  }
  cgroup(pid: number) {
    return this.procs.get(pid)?.cgroup;
  }
  relative(procPath: string) {
    return procPath.replace(/^\/+/, '');
  }
  processes() {
    return [...this.procs.values()].map((p) => ({ pid: p.pid, ppid: p.ppid }));
  }
  /** clock ticks now: start times above were before 124 */
  now = 124;
  ticks() {
    return this.now;
  }
  exists(group: string) {
    return this.groups.has(group);
  }
  mkdir(group: string) {
    this.log.push(`mkdir ${group}`);
    this.groups.add(group);
  }
  move(group: string, pid: number) {
    const p = this.procs.get(pid);
    if (!p) return false;
    if (!this.groups.has(group)) throw new Error(`no cgroup ${group}`);
    this.log.push(`move ${pid} ${group}`);
    p.cgroup = group;
    return true;
  }
  members(group: string) {
    return [...this.procs.values()].filter((p) => p.cgroup === group).map((p) => p.pid);
  }
  populated(group: string) {
    if (!this.groups.has(group)) return undefined;
    return [...this.procs.values()].some(
      (p) => p.cgroup === group || p.cgroup.startsWith(group + '/'),
    );
  }
  rmdir(group: string) {
    if (this.populated(group)) return false;
    this.log.push(`rmdir ${group}`);
    this.groups.delete(group);
    return true;
  }
  watch(group: string, onChange: () => void) {
    this.watched.set(group, onChange);
    return () => this.watched.delete(group);
  }
}
