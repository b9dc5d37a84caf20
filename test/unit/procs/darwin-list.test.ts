/**
 * ListProcesses on macOS (procs/darwin.ts) over a process table fed from a captured `ps -ef`
 * (macOS 10.14.6; test/helpers/macos-host/procs.ts): the rule an executable matches routes its
 * TCP per connection (the flow router's matcher and fallbacks), root's processes are not
 * routed per app (shown `pending`, routed by the table), processes that vanish mid-scan are
 * left out, and hostile paths pass through as data.
 */
import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import type { ExecChoice } from '../../../src/model/match.js';
import { listDarwinProcesses } from '../../../src/procs/darwin.js';
import { darwinProcessLister, processLister } from '../../../src/procs/list.js';
import { capturedProcTable, executableOf } from '../../helpers/macos-host/procs.js';

const rule = (r: Record<string, unknown>) => Rule.parse(r);
const rules = [
  rule({ name: 'mail', match: { name: 'Mail' }, target: 'work', fallback: 'block' }),
  rule({
    name: 'sublime',
    match: { dir: '/Applications/Sublime Text.app' },
    target: 'work',
    fallback: 'allow-direct',
  }),
  rule({ name: 'docker', match: { dir: '/Applications/Docker.app' }, target: 'direct' }),
  rule({ name: 'jamf', match: { dir: '/usr/local/jamf' }, target: 'block' }),
  rule({
    name: 'outlook',
    match: { path: '/Applications/Microsoft Outlook.app/**' },
    target: 'block',
    enabled: false,
  }),
];
const up = (names: string[]) => (t: string) => names.includes(t);

describe('the capture as libproc would answer it', () => {
  it('executables: bundle names with spaces kept, arguments dropped', () => {
    expect(capturedProcTable().rows.map((r) => r.path)).toContain(
      '/Applications/Sublime Text.app/Contents/MacOS/Sublime Text',
    );
    expect(
      executableOf(
        '/Applications/Sublime Text.app/Contents/MacOS/plugin_host 560 --auto-shell-env',
      ),
    ).toBe('/Applications/Sublime Text.app/Contents/MacOS/plugin_host');
    expect(executableOf('/usr/local/jamf/bin/jamf launchDaemon -monitorUsage')).toBe(
      '/usr/local/jamf/bin/jamf',
    );
    expect(capturedProcTable().rows).toHaveLength(16);
  });
});

describe('listDarwinProcesses', () => {
  it('matched user apps: the first matching rule, its target and the route its fallbacks give now', () => {
    const l = listDarwinProcesses(capturedProcTable(), rules, {
      tunnelUp: up(['work']),
      defaultRoute: 'direct',
    });
    expect(l.map((p) => [p.pid, p.name, p.rule, p.target, p.route])).toEqual(
      [
        [530, 'Mail', 'mail', 'work', 'work'],
        [560, 'Sublime Text', 'sublime', 'work', 'work'],
        [633, 'plugin_host', 'sublime', 'work', 'work'],
        [907, 'Docker', 'docker', 'direct', 'direct'],
        [1037, 'com.docker.super', 'docker', 'direct', 'direct'],
        // root: not routed per app (PF skips the router's uid); matched, so listed as pending
        [48, 'jamf', undefined, undefined, 'direct'],
      ].sort((a, b) => (a[0] as number) - (b[0] as number)),
    );
    expect(l.find((p) => p.pid === 48)).toEqual({
      pid: 48,
      ppid: 1,
      name: 'jamf',
      path: '/usr/local/jamf/bin/jamf',
      cgroup: '',
      route: 'direct',
      pending: 'jamf',
    });
    expect(l.find((p) => p.pid === 633)).toMatchObject({ ppid: 560, cgroup: '' });
  });

  it('tunnel down: each rule takes its fallback (block, allow-direct); a disabled rule matches nothing', () => {
    const l = listDarwinProcesses(capturedProcTable(), rules, {
      tunnelUp: up([]),
      defaultRoute: 'direct',
    });
    expect(Object.fromEntries(l.map((p) => [p.pid, p.route]))).toMatchObject({
      530: 'blocked',
      560: 'direct',
      633: 'direct',
    });
    expect(l.some((p) => p.pid === 8297)).toBe(false);
  });

  it('all: unmatched processes get the default route through the router (blocked while it is down); root gets the routing table', () => {
    const all = (upNow: string[]) =>
      Object.fromEntries(
        listDarwinProcesses(capturedProcTable(), rules, {
          tunnelUp: up(upNow),
          defaultRoute: 'home',
          all: true,
        }).map((p) => [p.pid, p]),
      );
    const a = all(['home']);
    expect(Object.keys(a)).toHaveLength(16);
    expect(a[876]).toMatchObject({ name: 'StatusClock', route: 'home' });
    expect(a[876]!.rule).toBeUndefined();
    expect(a[1]).toMatchObject({ name: 'launchd', route: 'home' }); // root: the default tunnel's 0/1 + 128/1
    expect(a[194]).toMatchObject({ name: 'mDNSResponder', route: 'home' }); // uid 65: through the router
    const b = all([]);
    expect(b[876]!.route).toBe('blocked'); // the router blocks unmatched apps while the default is down
    expect(b[1]!.route).toBe('direct'); // root: the utun and its routes are gone; the table's default remains
  });

  it('no enabled rule: no router, unmatched processes follow the routing table', () => {
    const l = listDarwinProcesses(capturedProcTable(), [rules[4]!], {
      tunnelUp: up([]),
      defaultRoute: 'home',
      all: true,
    });
    expect(new Set(l.map((p) => p.route))).toEqual(new Set(['direct']));
  });

  it('a process that exits between the calls is left out, whichever call missed it', () => {
    const t = capturedProcTable({ gone: new Set([530, 560]) });
    const info = t.info.bind(t);
    let calls = 0;
    const racing = {
      ...t,
      info: (pid: number) => (pid === 907 && calls++ === 0 ? undefined : info(pid)),
    };
    const l = listDarwinProcesses(racing, rules, { tunnelUp: up(['work']) });
    expect(l.map((p) => p.pid)).toEqual([48, 633, 1037]);
  });

  it('hostile paths and names are data: no rule matches by substring, nothing is evaluated', () => {
    const evil = '/tmp/\u001b[2J/Applications/Sublime Text.app/Contents/MacOS/x';
    const t = capturedProcTable({
      rows: [
        { uid: 501, pid: 9, ppid: 1, path: evil },
        {
          uid: 501,
          pid: 10,
          ppid: 1,
          path: '/Applications/Mail.app/Contents/MacOS/Mail (deleted)',
        },
      ],
    });
    const l = listDarwinProcesses(t, rules, { tunnelUp: up(['work']), all: true });
    expect(l[0]).toMatchObject({ pid: 9, path: evil, route: 'direct' });
    expect(l[0]!.rule).toBeUndefined();
    expect(l[1]).toMatchObject({ rule: 'mail' });
  });
});

describe('listDarwinProcesses: awg exec', () => {
  // awg exec (root, run by sudo from Terminal) → curl as the user → its child; Docker's helper under curl
  const extra = [
    { uid: 0, pid: 9000, ppid: 556, path: '/usr/local/bin/node' },
    { uid: 501, pid: 9001, ppid: 9000, path: '/usr/bin/curl' },
    { uid: 501, pid: 9002, ppid: 9001, path: '/opt/tool/worker' },
    { uid: 501, pid: 9003, ppid: 9001, path: '/Applications/Docker.app/Contents/MacOS/helper' },
  ];
  const table = () => {
    const t = capturedProcTable();
    return capturedProcTable({ rows: [...t.rows, ...extra] });
  };
  const registered =
    (choice: ExecChoice, at = 9000) =>
    (pid: number, parentOf: (pid: number) => number | undefined) => {
      for (let p: number | undefined = pid; p !== undefined && p > 1; p = parentOf(p))
        if (p === at) return choice;
      return undefined;
    };
  const rows = (l: ReturnType<typeof listDarwinProcesses>) =>
    l.filter((p) => p.pid >= 9000).map((p) => [p.pid, p.rule, p.target, p.route]);

  it('the registered tree is listed as Linux lists an exec cgroup (exec:<tunnel> or exec:direct); awg itself, root, is not routed per app', () => {
    expect(
      rows(
        listDarwinProcesses(table(), rules, {
          tunnelUp: up(['work']),
          execOf: registered({ tunnel: 'work' }),
        }),
      ),
    ).toEqual([
      [9001, 'exec:work', 'work', 'work'],
      [9002, 'exec:work', 'work', 'work'],
      [9003, 'exec:work', 'work', 'work'],
    ]);
    expect(
      rows(
        listDarwinProcesses(table(), rules, {
          tunnelUp: up([]),
          execOf: registered({ tunnel: 'work' }),
        }),
      ).map((r) => r[3]),
    ).toEqual(['blocked', 'blocked', 'blocked']);
    expect(
      rows(
        listDarwinProcesses(table(), rules, {
          tunnelUp: up(['work']),
          execOf: registered({ direct: true }),
        }),
      ),
    ).toEqual([
      [9001, 'exec:direct', 'direct', 'direct'],
      [9002, 'exec:direct', 'direct', 'direct'],
      [9003, 'exec:direct', 'direct', 'direct'],
    ]);
  });

  it('--rule: the rule for processes no rule matches, the rules for one that a rule matches itself; a registration lower in the tree covers only its subtree', () => {
    expect(
      rows(
        listDarwinProcesses(table(), rules, {
          tunnelUp: up([]),
          execOf: registered({ rule: 'sublime' }),
        }),
      ),
    ).toEqual([
      [9001, 'sublime', 'work', 'direct'], // allow-direct while work is down
      [9002, 'sublime', 'work', 'direct'],
      [9003, 'docker', 'direct', 'direct'],
    ]);
    expect(
      rows(
        listDarwinProcesses(table(), rules, {
          tunnelUp: up(['work']),
          execOf: registered({ tunnel: 'work' }, 9002),
        }),
      ),
    ).toEqual([
      [9002, 'exec:work', 'work', 'work'],
      [9003, 'docker', 'direct', 'direct'],
    ]);
  });
});

describe('the lister the platform chooses', () => {
  it('flow-router: the libproc table (a fake here), the config default and tunnel kinds', () => {
    const config = { rules, default: 'px', tunnels: { px: { type: 'socks5' } } } as never;
    const l = darwinProcessLister(capturedProcTable()).list(config, 'awg', {
      tunnelUp: up(['px']),
      all: true,
    });
    // a proxy default: root's TCP follows the routing table, which has no route into a proxy
    expect(l.find((p) => p.pid === 1)!.route).toBe('direct');
    expect(l.find((p) => p.pid === 876)!.route).toBe('px');
  });
  it('none: unsupported', async () => {
    const l = await processLister('none');
    expect(() =>
      l.list({ rules: [], default: 'direct', tunnels: {} }, 'awg', { tunnelUp: () => true }),
    ).toThrow(expect.objectContaining({ kind: 'unsupported' }));
  });
});
