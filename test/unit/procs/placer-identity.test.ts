import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import { compileRules } from '../../../src/model/match.js';
import { E } from '../../../src/native/libc.js';
import { PROC_EVENT, buildProcEvent, parseProcMessage } from '../../../src/procs/connector.js';
import { linuxIdentityLookup } from '../../../src/procs/identity.js';
import { ProcessPlacer, describeProcess, type CgroupWriter } from '../../../src/procs/placer.js';
import {
  flatpakIdOf,
  flatpakIdOfCgroup,
  parseFlatpakInfo,
  parseStatusUid,
  type ProcFs,
} from '../../../src/procs/scan.js';
import { parseToPlacer } from '../../../src/procs/placer-protocol.js';

interface P {
  ppid: number;
  exe: string;
  cgroup: string;
  uid?: number;
  flatpak?: string;
}

class Sys implements ProcFs, CgroupWriter {
  procs = new Map<number, P>();
  writes: [string, number][] = [];
  reads = { uid: 0, flatpak: 0, cgroup: 0 };
  private h = new Map<number, string>();
  add(pid: number, p: P): this {
    this.procs.set(pid, p);
    return this;
  }
  pids = () => [...this.procs.keys()];
  exe = (pid: number) => this.procs.get(pid)?.exe;
  comm = () => 'x';
  ppid = (pid: number) => this.procs.get(pid)?.ppid;
  cgroup = (pid: number) => {
    this.reads.cgroup++;
    return this.procs.get(pid)?.cgroup;
  };
  uid = (pid: number) => {
    this.reads.uid++;
    return this.procs.get(pid)?.uid;
  };
  flatpak = (pid: number) => {
    this.reads.flatpak++;
    return this.procs.get(pid)?.flatpak;
  };
  open(path: string): number {
    const n = this.h.size + 10;
    this.h.set(n, path);
    return n;
  }
  write(h: number, pid: number): number {
    const p = this.procs.get(pid);
    if (!p) return -E.ESRCH;
    this.writes.push([this.h.get(h)!, pid]);
    p.cgroup = `/${this.h.get(h)!}`;
    return 0;
  }
  close(): void {}
}

const rules = (...rs: Record<string, unknown>[]) =>
  compileRules(
    rs.map((r) => Rule.parse(r)),
    linuxIdentityLookup({ users: { alice: 1000 } }, () => ''),
  );
const exec = (pid: number) => parseProcMessage(buildProcEvent(PROC_EVENT.EXEC, 1n, [pid, pid]))!;

function setup(matcher: ReturnType<typeof rules>) {
  const sys = new Sys();
  sys.add(1, { ppid: 0, exe: '/sbin/init', cgroup: '/' });
  sys.add(999, { ppid: 1, exe: '/usr/bin/node', cgroup: '/system.slice/awg.service' });
  const placer = new ProcessPlacer({
    matcher,
    cgroupRoot: 'awg',
    mount: { mountPoint: '/sys/fs/cgroup', root: '/' },
    writer: sys,
    procfs: sys,
    selfPid: 999,
  });
  return { sys, placer };
}

describe('identity in /proc', () => {
  it('parses the effective uid, .flatpak-info and a Flatpak scope name', () => {
    expect(parseStatusUid('Name:\tx\nUid:\t1000\t1001\t1001\t1001\nGid:\t5\n')).toBe(1001);
    expect(parseStatusUid('Name:\tx\n')).toBeUndefined();
    const info = '[Instance]\nname=nope\n\n[Application]\nname=org.mozilla.firefox\nruntime=x\n';
    expect(parseFlatpakInfo(info)).toBe('org.mozilla.firefox');
    expect(parseFlatpakInfo('[Instance]\nname=x\n')).toBeUndefined();
    expect(
      flatpakIdOfCgroup(
        '/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.gnome.Maps-12345.scope',
      ),
    ).toBe('org.gnome.Maps');
    expect(flatpakIdOfCgroup('/user.slice/app-firefox-1.scope')).toBeUndefined();
    expect(flatpakIdOf(undefined, '/a/app-flatpak-org.a.b-1.scope/sub')).toBe('org.a.b');
    expect(flatpakIdOf(info, '/a/app-flatpak-org.a.b-1.scope')).toBe('org.mozilla.firefox');
  });
});

describe('placement with identity rules', () => {
  it('a flatpak rule moves the sandboxed app at exec and when gated', () => {
    const { sys, placer } = setup(
      rules({ name: 'ff', match: { flatpak: 'org.mozilla.firefox' }, target: 'vpn' }),
    );
    sys.add(50, {
      ppid: 1,
      exe: '/app/lib/firefox/firefox',
      cgroup: '/user.slice',
      flatpak: 'org.mozilla.firefox',
    });
    sys.add(51, { ppid: 1, exe: '/usr/bin/firefox', cgroup: '/user.slice' });
    sys.add(52, { ppid: 1, exe: '/app/bin/x', cgroup: '/user.slice', flatpak: 'org.other.App' });
    placer.handleEvents([exec(50), exec(51), exec(52)]);
    expect(sys.writes).toEqual([['awg/ff', 50]]);
    sys.add(60, {
      ppid: 1,
      exe: '/usr/bin/bwrap',
      cgroup: '/user.slice',
      flatpak: 'org.mozilla.firefox',
    });
    expect(placer.placeGated(60, '/app/bin/firefox', true)).toBe('placed');
    expect(sys.writes.at(-1)).toEqual(['awg/ff', 60]);
    // no uid reads without user rules
    expect(sys.reads.uid).toBe(0);
  });
  it('a process whose first fitting rule is user/unit/cgroup is never moved, at exec or rescan', () => {
    const { sys, placer } = setup(
      rules(
        { name: 'web', match: { unit: 'web.service' }, target: 'vpn' },
        { name: 'alice', match: { user: 'alice' }, target: 'vpn' },
        { name: 'curl', match: { name: 'curl' }, target: 'vpn2' },
      ),
    );
    sys.add(70, { ppid: 1, exe: '/usr/bin/curl', cgroup: '/system.slice/web.service', uid: 33 });
    sys.add(71, { ppid: 1, exe: '/usr/bin/curl', cgroup: '/user.slice', uid: 1000 });
    sys.add(72, { ppid: 1, exe: '/usr/bin/curl', cgroup: '/user.slice', uid: 1001 });
    placer.handleEvents([exec(70), exec(71), exec(72)]);
    expect(sys.writes).toEqual([['awg/curl', 72]]);
    expect(placer.placeGated(70, '/usr/bin/curl', true)).toBe('miss');
    placer.rescan();
    expect(sys.writes).toEqual([['awg/curl', 72]]);
    expect(sys.procs.get(70)!.cgroup).toBe('/system.slice/web.service');
  });
  it('failover never moves a unit process on to a later program rule', () => {
    const sys = new Sys();
    sys.add(1, { ppid: 0, exe: '/sbin/init', cgroup: '/' });
    const placer = new ProcessPlacer({
      matcher: rules(
        { name: 'web', match: { unit: 'web.service' }, target: 'vpn', fallback: 'failover' },
        { name: 'curl', match: { name: 'curl' }, target: 'vpn2' },
      ),
      cgroupRoot: 'awg',
      mount: { mountPoint: '/sys/fs/cgroup', root: '/' },
      writer: sys,
      procfs: sys,
      selfPid: 999,
      down: new Set(['vpn']),
    });
    sys.add(80, { ppid: 1, exe: '/usr/bin/curl', cgroup: '/system.slice/web.service' });
    placer.onExec(80);
    expect(sys.writes).toEqual([]);
  });
  it('awg processes lists the rule matched in place and the flatpak id', () => {
    const m = rules(
      { name: 'web', match: { unit: 'web.service' }, target: 'vpn' },
      { name: 'ff', match: { flatpak: 'org.mozilla.firefox' }, target: 'vpn' },
    );
    const o = { tunnelUp: (t: string) => t === 'vpn' };
    const [web] = describeProcess(
      {
        pid: 5,
        ppid: 1,
        name: 'nginx',
        exe: '/usr/sbin/nginx',
        cgroup: '/system.slice/web.service',
      },
      m,
      'awg',
      '/',
      o,
    );
    expect(web).toMatchObject({ rule: 'web', target: 'vpn', route: 'vpn' });
    expect(web!.pending).toBeUndefined();
    const [ff] = describeProcess(
      {
        pid: 6,
        ppid: 1,
        name: 'firefox',
        exe: '/app/bin/firefox',
        cgroup: '/user.slice',
        flatpak: 'org.mozilla.firefox',
      },
      m,
      'awg',
      '/',
      o,
    );
    expect(ff).toMatchObject({ pending: 'ff', flatpak: 'org.mozilla.firefox', route: 'direct' });
    const down = describeProcess(
      {
        pid: 5,
        ppid: 1,
        name: 'nginx',
        exe: '/usr/sbin/nginx',
        cgroup: '/system.slice/web.service',
      },
      m,
      'awg',
      '/',
      { tunnelUp: () => false },
    );
    expect(down[0]!.route).toBe('blocked');
  });
  it('the placer protocol carries identity facts and destination-only rules', () => {
    const msg = parseToPlacer(
      JSON.stringify({
        type: 'config',
        rules: [
          { target: 'vpn', to: { cidrs: ['10.0.0.0/8'] } },
          { target: 'vpn', match: { user: 'alice' } },
        ],
        cgroupRoot: 'awg',
        mount: { mountPoint: '/sys/fs/cgroup', root: '/' },
        down: [],
        identity: { users: { alice: 1000 }, unitCgroups: { 'a.service': '/x.slice/a.service' } },
      }),
    );
    expect(msg).toMatchObject({ type: 'config', identity: { users: { alice: 1000 } } });
    expect(
      parseToPlacer(
        JSON.stringify({
          type: 'config',
          rules: [],
          cgroupRoot: 'awg',
          mount: { mountPoint: '/m', root: '/' },
          down: [],
          identity: { users: { alice: -1 } },
        }),
      ),
    ).toHaveProperty('invalid');
  });
});
