/**
 * `awg explain`: through the daemon (FakeCore: the request it gets, the text and the JSON it
 * prints) and directly (-f: this test process read from /proc, list files named as sources,
 * names resolved).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { explainCommand } from '../../../src/cli/commands/explain.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { ExplainDocument } from '../../../src/model/explain-document.js';
import type { Platform } from '../../../src/resources/registry.js';
import { FakeCore } from '../daemon/server-fake-core.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'awg-explain-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function capture() {
  let out = '';
  let err = '';
  return {
    io: { out: (s: string) => (out += s), err: (s: string) => (err += s), colour: false },
    get out() {
      return out;
    },
    get err() {
      return err;
    },
  };
}

const platform = {
  perApp: 'cgroup',
  upLinks: async () => new Set<string>(),
} as unknown as Platform;

describe('awg explain through the daemon', () => {
  it('sends pid, host, port and protocol; prints numbered steps and the decision, or the document', async () => {
    const dir = tmp();
    const core = new FakeCore();
    const socket = join(dir, 'awg.sock');
    const server = await startApiServer(core, { socketPath: socket });
    cleanups.push(() => server.close());
    const c = capture();
    expect(
      await explainCommand(c.io, { pid: '4242', to: 'www.example.net:443', socket, stateDir: dir }),
    ).toBe(0);
    expect(core.calls).toEqual([
      {
        method: 'explain',
        arg: { pid: 4242, host: 'www.example.net', port: 443, proto: 'tcp' },
      },
    ]);
    expect(c.out).toBe(
      [
        'process 4242: /usr/bin/curl uid 1000 cgroup /awg/web',
        "to 203.0.113.7:443/tcp (www.example.net via the daemon's learned addresses)",
        '1. rules[0] blocked → block: no-fit',
        '   program     · no `match`: every program',
        "   destination ✗ not in the rule's 2 prefixes, and the rule's domains learned no such address",
        '2. rules[1] web → work: decides (tunnel work is up)',
        '   program     ✓ /usr/bin/curl fits match.name curl; the process sits in awg/web',
        '   destination · no `to`: every destination',
        'route: work (rule web) — rules[1] web: tunnel work is up',
        '',
      ].join('\n'),
    );
    const j = capture();
    await explainCommand(j.io, {
      pid: '7',
      to: '[2001:db8::1]:53',
      udp: true,
      json: true,
      socket,
      stateDir: dir,
    });
    expect(core.calls.at(-1)).toEqual({
      method: 'explain',
      arg: { pid: 7, host: '2001:db8::1', port: 53, proto: 'udp' },
    });
    expect(ExplainDocument.parse(JSON.parse(j.out))).toMatchObject({ pid: 7, source: 'daemon' });
  });

  it('a bad --pid or --to is refused before anything is asked', async () => {
    for (const [pid, to] of [
      ['x', 'a:1'],
      ['0', 'a:1'],
      ['1', 'a'],
      ['1', '2001:db8::1:443'],
      ['1', 'a:65536'],
    ] as const) {
      const c = capture();
      expect(
        await explainCommand(c.io, { pid, to, socket: '/nonexistent/awg.sock' }),
        `${pid} ${to}`,
      ).toBe(1);
      expect(c.err).toMatch(/--pid|--to/);
    }
  });
});

describe('awg explain, direct (-f)', () => {
  function config(dir: string): string {
    writeFileSync(join(dir, 'blocked.txt'), '# blocked\n203.0.113.0/24\n2001:db8:bad::/48\n');
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1
rules:
  - name: me
    match: { name: ${JSON.stringify(basename(process.execPath))} }
    target: direct
  - name: blocked
    to: { lists: [blocked.txt], cidrs: [198.51.100.0/24] }
    target: block
`,
    );
    return file;
  }

  it('reads this process from /proc; a program rule does not hold outside its cgroup; the list file is named', async () => {
    const dir = tmp();
    const c = capture();
    const code = await explainCommand(c.io, {
      pid: String(process.pid),
      to: '203.0.113.7:443',
      file: config(dir),
      stateDir: dir,
      platform,
      json: true,
    });
    expect(code, c.err).toBe(0);
    const d = ExplainDocument.parse(JSON.parse(c.out));
    expect(d.source).toBe('direct');
    expect(d.subject.exe).toBe(process.execPath);
    expect(d.subject.uid).toBe(process.getuid!());
    expect(d.steps[0]!.program.fits).toBe(false);
    expect(d.steps[0]!.program.why).toContain(`fits match.name ${basename(process.execPath)}, but`);
    expect(d.steps[1]!.destination).toEqual({
      fits: true,
      why: '203.0.113.7 is in 203.0.113.0/24 (blocked.txt)',
    });
    expect(d.decision).toEqual({
      rule: 'blocked',
      route: 'blocked',
      why: 'rules[1] blocked: target block',
    });
  });

  it('a name is resolved (getaddrinfo here) and the address used is shown', async () => {
    const dir = tmp();
    const c = capture();
    const asked: string[] = [];
    const code = await explainCommand(c.io, {
      pid: String(process.pid),
      to: 'listed.test:80',
      file: config(dir),
      stateDir: dir,
      platform,
      resolve: async (h) => {
        asked.push(h);
        return ['2001:db8:bad::5', '192.0.2.1'];
      },
    });
    expect(code, c.err).toBe(0);
    expect(asked).toEqual(['listed.test']);
    expect(c.out).toContain(
      'to [2001:db8:bad::5]:80/tcp (listed.test via getaddrinfo; also 192.0.2.1)',
    );
    expect(c.out).toContain('2001:db8:bad::5 is in 2001:db8:bad::/48 (blocked.txt)');
    expect(c.out).toContain('route: blocked (rule blocked)');
  });

  it('a process that does not exist is an error', async () => {
    const dir = tmp();
    const c = capture();
    expect(
      await explainCommand(c.io, {
        pid: '999999999',
        to: '192.0.2.1:1',
        file: config(dir),
        stateDir: dir,
        platform,
      }),
    ).toBe(1);
    expect(c.err).toContain('no process 999999999');
  });
});
