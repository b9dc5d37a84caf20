/**
 * `awg top`'s text view (src/cli/render-top.ts), pure: every line fits the width (text
 * shrinks with …, then columns go in order, paths keep their end), the height bounds the
 * process rows, sorting by every column and reversed, the rule and tunnel filters, human
 * units, and process names that carry escape sequences.
 */
import { describe, expect, it } from 'vitest';
import {
  displayWidth,
  filterDocument,
  fitTable,
  humanBits,
  humanRate,
  humanSize,
  parseSort,
  renderTop,
  sortProcesses,
  TOP_COLUMNS,
  truncate,
} from '../../../src/cli/render-top.js';
import type { TopDocument, TopProcess } from '../../../src/procs/top/document.js';
import { sampleTop } from '../daemon/server-fake-core.js';

const LONG_EXE = '/opt/vendor/some/deeply/nested/install/bin/restic-backup-helper';

function doc(): TopDocument {
  const d = sampleTop();
  const t = { upload: 0, download: 0, sent: 0, received: 0, connections: 0 };
  d.processes.push(
    {
      pid: 31337,
      name: 'restic',
      exe: LONG_EXE,
      rule: 'backup',
      route: 'office',
      ...t,
      upload: 9_000_000,
      sent: 12_345_678_901,
      connections: 12,
    },
    {
      pid: 12,
      name: 'curl',
      exe: '/usr/bin/curl',
      rule: 'browsers',
      route: 'direct',
      ...t,
      download: 300,
      received: 900,
      connections: 1,
    },
  );
  d.connections.push({
    id: 'tcp/4/10.0.0.2:40001/198.51.100.7:443/9',
    proto: 'tcp',
    family: 4,
    local: { addr: '10.0.0.2', port: 40001 },
    remote: { addr: '198.51.100.7', port: 443 },
    pid: 12,
    rule: 'browsers',
    route: 'office',
    upload: 0,
    download: 300,
    sent: 0,
    received: 900,
  });
  d.rules.push({ name: 'backup', target: 'office', route: 'office', processes: 1, ...t });
  d.tunnels.push({ name: 'office', ...t });
  return d;
}

const lines = (s: string) => s.replace(/\n$/, '').split('\n');

describe('renderTop fits the terminal', () => {
  it('at any width every line fits; wide enough, nothing is cut', () => {
    for (let w = 10; w <= 200; w++)
      for (const l of lines(renderTop(doc(), { width: w })))
        expect(displayWidth(l), `width ${w}: ${l}`).toBeLessThanOrEqual(w);
    const wide = renderTop(doc(), { width: 200 });
    expect(wide).toContain(LONG_EXE);
    expect(wide).not.toContain('…');
    expect(lines(wide).find((l) => l.startsWith('  PID') || l.includes('PID'))).toMatch(
      /PID\s+PROCESS\s+RULE\s+ROUTE\s+UP\s+DOWN\s+SENT\s+RECV\s+CONNS\s+LIMIT$/,
    );
  });

  it('narrower: the process path keeps its end, then LIMIT, CONNS, SENT+RECV, RULE, ROUTE go in that order', () => {
    const header = (w: number) =>
      lines(renderTop(doc(), { width: w })).find((l) => /\bPID\b/.test(l))!;
    const row = (w: number) =>
      lines(renderTop(doc(), { width: w, sort: 'pid' })).find((l) => l.includes('31337'))!;
    expect(row(100)).toMatch(/…[a-z/-]*restic-backup-helper /);
    const seen = new Set<string>();
    const order: string[] = [];
    for (let w = 200; w >= 30; w--) {
      const cols = header(w).trim().split(/\s+/);
      for (const c of ['LIMIT', 'CONNS', 'SENT', 'RECV', 'RULE', 'ROUTE'])
        if (!cols.includes(c) && !seen.has(c)) {
          seen.add(c);
          order.push(c);
        }
    }
    expect(order).toEqual(['LIMIT', 'CONNS', 'SENT', 'RECV', 'RULE', 'ROUTE']);
    // PID, the process, UP and DOWN stay
    expect(header(40).trim().split(/\s+/)).toEqual(['PID', 'PROCESS', 'UP', 'DOWN']);
  });

  it('the height bounds the process rows: the rest is counted, the unattributed row stays', () => {
    const full = lines(renderTop(doc(), { width: 120 }));
    const h = full.length - 1;
    const cut = lines(renderTop(doc(), { width: 120, height: h }));
    expect(cut.length).toBeLessThan(h);
    expect(cut.join('\n')).toMatch(/… \d+ more/);
    // … then the unattributed row, then the warning
    expect(cut.at(-3)).toMatch(/… \d+ more/);
    expect(cut.at(-2)).toMatch(/^\s+-\s+\(unattributed\)/);
    expect(cut.join('\n')).toContain('(unattributed)');
  });

  it('no limit: every row, nothing cut, no escape sequences', () => {
    const s = renderTop(doc());
    expect(s).toContain(LONG_EXE);
    expect(s).not.toContain('\x1b');
    expect(s).toContain('warning: conntrack accounting is off');
  });

  it('names with escape sequences and control characters are shown harmless', () => {
    const d = doc();
    d.processes[0]!.exe = '/tmp/\x1b]0;owned\x07evil\x1b[2Jname\n';
    d.rules[0]!.name = 'r\x1b[31mred';
    const s = renderTop(d, { width: 120 });
    expect(s).not.toContain('\x1b');
    expect(s).not.toContain('\x07');
    expect(s).toContain('/tmp/evilname\\n');
  });
});

describe('sorting and filters', () => {
  const pids = (list: TopProcess[]) => list.map((p) => p.pid);

  it('every column sorts; counters largest first, text A→Z, pid ascending; -r reverses', () => {
    const ps = doc().processes;
    expect(pids(sortProcesses(ps))).toEqual([31337, 4242, 12, 7]);
    expect(pids(sortProcesses(ps, 'up'))).toEqual([31337, 4242, 7, 12]);
    expect(pids(sortProcesses(ps, 'down'))).toEqual([4242, 12, 7, 31337]);
    expect(pids(sortProcesses(ps, 'sent'))).toEqual([31337, 4242, 7, 12]);
    expect(pids(sortProcesses(ps, 'recv'))).toEqual([4242, 12, 7, 31337]);
    expect(pids(sortProcesses(ps, 'conns'))).toEqual([31337, 4242, 7, 12]);
    expect(pids(sortProcesses(ps, 'pid'))).toEqual([7, 12, 4242, 31337]);
    expect(pids(sortProcesses(ps, 'pid', true))).toEqual([31337, 4242, 12, 7]);
    // by the label shown: the executable, else the name
    // by the executable's file name (else the name): curl, firefox, restic-backup-helper, sshd
    expect(pids(sortProcesses(ps, 'process'))).toEqual([12, 4242, 31337, 7]);
    expect(pids(sortProcesses(ps, 'rule'))).toEqual([7, 31337, 12, 4242]);
    expect(pids(sortProcesses(ps, 'route'))).toEqual([7, 12, 31337, 4242]);
    expect(pids(sortProcesses(ps, 'route', true))).toEqual([4242, 31337, 12, 7]);
  });

  it('the view shows the processes in that order', () => {
    const s = renderTop(doc(), { sort: 'pid', reverse: true });
    const order = [31337, 4242, 12, 7].map((p) => s.indexOf(`\n${String(p).padStart(5)}  `));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(s).toContain('sort pid (reversed)');
  });

  it('--sort takes any column (any case) and a few long names; anything else is an error', () => {
    for (const c of TOP_COLUMNS) expect(parseSort(c.toUpperCase())).toBe(c);
    expect(parseSort('download')).toBe('down');
    expect(parseSort('received')).toBe('recv');
    expect(parseSort('connections')).toBe('conns');
    expect(parseSort('name')).toBe('process');
    expect(() => parseSort('cpu')).toThrow(/--sort cpu: not a column \(pid, process/);
  });

  it('--rule keeps its processes and connections; --tunnel those routed (or connected) through it', () => {
    const byRule = filterDocument(doc(), { rule: 'browsers' });
    expect(pids(byRule.processes)).toEqual([4242, 12]);
    expect(byRule.connections.map((c) => c.pid)).toEqual([4242, 12]);
    expect(byRule.rules).toHaveLength(2);
    // curl's route is direct, but one of its connections goes through office
    const byTunnel = filterDocument(doc(), { tunnel: 'office' });
    expect(pids(byTunnel.processes)).toEqual([31337, 12]);
    expect(byTunnel.connections.map((c) => c.pid)).toEqual([12]);
    expect(pids(filterDocument(doc(), { rule: 'browsers', tunnel: 'work' }).processes)).toEqual([
      4242,
    ]);
    const view = renderTop(doc(), { rule: 'backup' });
    expect(view).toContain('only rule backup');
    expect(view).not.toContain('firefox');
    expect(view).toContain('(unattributed)');
  });
});

describe('units and cutting', () => {
  it('decimal units: B, kB, MB, GB; rates per second; limits in bits', () => {
    expect(
      [0, 999, 1000, 1234, 99_949, 99_950, 123_456_789, 12_345_678_901].map(humanSize),
    ).toEqual(['0 B', '999 B', '1.0 kB', '1.2 kB', '99.9 kB', '100 kB', '123 MB', '12.3 GB']);
    expect(humanRate(2_500_000)).toBe('2.5 MB/s');
    expect(humanBits(8_000_000)).toBe('8 Mbit');
    expect(humanBits(1_500_000)).toBe('1.5 Mbit');
  });

  it('truncate cuts by terminal columns, with … at the end or (paths) at the start', () => {
    expect(truncate('abcdef', 6)).toBe('abcdef');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('/usr/bin/firefox', 9, true)).toBe('…/firefox');
    expect(truncate('abc', 1)).toBe('…');
    expect(truncate('abc', 0)).toBe('');
    // wide characters take two columns
    expect(displayWidth('日本語')).toBe(6);
    expect(truncate('日本語', 5)).toBe('日本…');
    expect(displayWidth(truncate('日本語', 4))).toBeLessThanOrEqual(4);
  });

  it('fitTable: numbers right-aligned, the last text column without trailing blanks', () => {
    expect(
      fitTable(
        [
          { header: 'NAME', min: 3 },
          { header: 'N', right: true },
        ],
        [
          ['alpha', '1'],
          ['b', '100'],
        ],
      ),
    ).toEqual(['NAME     N', 'alpha    1', 'b      100']);
  });
});
