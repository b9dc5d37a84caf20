/**
 * `awg top` (src/cli/commands/top.ts): its options, the direct mode on a fake kernel reader
 * (with and without an apply record), the daemon mode against a fake daemon over the real API,
 * and the three outputs: `--json` (one document per line per interval, checked against the zod
 * schema and schema/top.schema.json), the live view on a terminal (redrawn in place, every
 * line within the width, the terminal given back), plain text when not a terminal.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { displayWidth } from '../../../src/cli/render-top.js';
import { topCommand, topSettings, type TopDeps } from '../../../src/cli/commands/top.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { AwgError } from '../../../src/errors.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { TopDocument } from '../../../src/procs/top/document.js';
import { steadySource } from '../../../src/procs/top/source.fake.js';
import type { Platform } from '../../../src/resources/registry.js';
import { FileStateStore } from '../../../src/util/state.js';
import { FakeCore, sampleTop } from '../daemon/server-fake-core.js';
import { MARKS, topYaml } from '../procs/top/top-fixture.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-top-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function capture(onOut: (all: string) => void = () => {}) {
  let out = '';
  let err = '';
  const io: Io = {
    out: (s) => {
      out += s;
      onOut(out);
    },
    err: (s) => (err += s),
    colour: false,
  };
  return { io, out: () => out, err: () => err };
}

const schema = JSON.parse(
  readFileSync(new URL('../../../schema/top.schema.json', import.meta.url), 'utf8'),
) as object;
const ajv = new Ajv2020({ strict: false });
function documents(out: string): TopDocument[] {
  return out
    .trim()
    .split('\n')
    .map((l) => {
      const j = JSON.parse(l) as unknown;
      expect(ajv.validate(schema, j), JSON.stringify(ajv.errors)).toBe(true);
      return TopDocument.parse(j);
    });
}

/** a platform whose tunnel `vpn` is up */
const platform = {
  perApp: 'cgroup',
  upLinks: async () => new Set(['awg-vpn']),
} as unknown as Platform;

const flows = () =>
  steadySource([
    { pid: 100, name: 'firefox', cgroup: '/awg/web', mark: MARKS.vpn, up: 1000, down: 50_000 },
    { pid: 101, name: 'firefox', cgroup: '/awg/web', mark: MARKS.vpn, up: 10, down: 20 },
    { pid: 7, name: 'sshd', up: 300, down: 100 },
  ]);

function directDeps(o: Partial<TopDeps> = {}): TopDeps {
  return { platform, source: async () => flows(), tty: false, ...o };
}

/** a state directory with a last apply of the fixture's config (rules web, backup, lan) */
function applied(): string {
  const dir = tmp();
  const cfg = join(dir, 'awg.yaml');
  writeFileSync(cfg, topYaml());
  new AppliedStore(new FileStateStore(join(dir, 'state'))).save({
    configFile: cfg,
    appliedAt: '2026-03-01T12:00:00.000Z',
    claims: { ...DEFAULT_CLAIMS, cgroupRoot: 'awg' },
    resources: [],
    outcome: 'converged',
  });
  return join(dir, 'state');
}

describe('awg top options', () => {
  it('--interval: seconds from 0.1 to 3600; --sort: a column', () => {
    expect(topSettings({}).intervalMs).toBe(1000);
    expect(topSettings({ interval: '0.25' }).intervalMs).toBe(250);
    expect(topSettings({ sort: 'RECV', reverse: true })).toMatchObject({
      sort: 'recv',
      reverse: true,
    });
    for (const bad of ['0', '-1', 'x', '3601'])
      expect(() => topSettings({ interval: bad })).toThrow(/--interval/);
  });

  it('a bad option is an error before anything is read (exit 1)', async () => {
    for (const args of [
      ['--interval', '0'],
      ['--sort', 'cpu'],
    ]) {
      const c = capture();
      const code = await main(['node', 'awg', 'top', '--direct', ...args], c.io);
      expect(code).toBe(1);
      expect(c.err()).toMatch(/awg: error \[invalid-config\]: --(interval|sort)/);
    }
  });
});

describe('awg top --direct (a fake kernel reader)', () => {
  it('--once --json: one document, one interval after the start, that the schema accepts; no apply record: a warning', async () => {
    const c = capture();
    const code = await topCommand(
      c.io,
      { direct: true, once: true, json: true, interval: '0.1', stateDir: tmp() },
      directDeps(),
    );
    expect(code, c.err()).toBe(0);
    const [d, ...more] = documents(c.out());
    expect(more).toEqual([]);
    expect(d!.intervalMs).toBe(1000); // the fake reader's clock: readings 1 s apart
    expect(d!.processes.map((p) => [p.pid, p.upload, p.download])).toEqual([
      [7, 300, 100],
      [100, 1000, 50_000],
      [101, 10, 20],
    ]);
    expect(d!.connections).toHaveLength(3);
    expect(d!.warnings[0]).toMatch(/awg is not applied here/);
    expect(d!.tunnels).toEqual([]);
  });

  it("with the last apply's config: rules and tunnels, two processes of one rule apart", async () => {
    const c = capture();
    const code = await topCommand(
      c.io,
      { direct: true, once: true, json: true, interval: '0.1', stateDir: applied() },
      directDeps(),
    );
    expect(code, c.err()).toBe(0);
    const [d] = documents(c.out());
    expect(d!.warnings).toEqual([]);
    expect(
      d!.processes.filter((p) => p.rule === 'web').map((p) => [p.pid, p.route, p.sent]),
    ).toEqual([
      [100, 'vpn', 1000],
      [101, 'vpn', 10],
    ]);
    expect(d!.rules.map((r) => [r.name, r.processes, r.upload])).toEqual([
      ['web', 2, 1010],
      ['backup', 0, 0],
      ['lan', 0, 0],
    ]);
    expect(d!.tunnels.find((t) => t.name === 'vpn')).toMatchObject({ download: 50_020 });
    expect(d!.direct).toMatchObject({ upload: 300 });
  });

  it('--json without --once: one document per line per interval, until stopped; filters apply', async () => {
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const c = capture((all) => all.split('\n').length > 3 && stop());
    const code = await topCommand(
      c.io,
      { direct: true, json: true, interval: '0.1', rule: 'web', stateDir: applied() },
      directDeps({ until }),
    );
    expect(code).toBe(0);
    const docs = documents(c.out());
    expect(docs.length).toBeGreaterThanOrEqual(3);
    expect(docs.map((d) => d.processes[0]!.sent)).toEqual(docs.map((_, i) => 1000 * (i + 1)));
    expect(docs.every((d) => d.processes.every((p) => p.rule === 'web'))).toBe(true);
  });

  it('on a terminal: the alternate screen, redrawn from home, every line within the width, given back at the end', async () => {
    const c = capture();
    const code = await topCommand(
      c.io,
      { direct: true, once: true, interval: '0.1', stateDir: applied() },
      directDeps({ tty: true, size: () => ({ columns: 50, rows: 30 }) }),
    );
    expect(code).toBe(0);
    const out = c.out();
    expect(out.startsWith('\x1b[?1049h\x1b[?25l\x1b[H')).toBe(true);
    expect(out.endsWith('\x1b[J\x1b[?25h\x1b[?1049l')).toBe(true);
    // eslint-disable-next-line no-control-regex -- the view's own escapes are stripped to measure it
    const text = out.replace(/\x1b\[[?0-9;]*[a-zA-Z]/g, '');
    expect(text).toContain('firefox');
    for (const l of text.split('\n')) expect(displayWidth(l), l).toBeLessThanOrEqual(50);
  });

  it('not a terminal: plain text, no escape sequences', async () => {
    const c = capture();
    const code = await topCommand(
      c.io,
      { direct: true, once: true, interval: '0.1', stateDir: applied(), sort: 'pid' },
      directDeps(),
    );
    expect(code).toBe(0);
    expect(c.out()).not.toContain('\x1b');
    expect(c.out()).toMatch(/^\s+PID\s+PROCESS\s+RULE\s+ROUTE\s+UP\s+DOWN\s+SENT\s+RECV\s+CONNS$/m);
    expect(c.out()).toMatch(/^\s+7\s+\/usr\/bin\/sshd\s+-\s+direct\s+300 B\/s/m);
  });

  it('a reader that fails ends awg top with its error', async () => {
    const c = capture();
    const code = await topCommand(
      c.io,
      { direct: true, once: true, interval: '0.1', stateDir: tmp() },
      directDeps({
        source: async () => {
          const s = flows();
          s.failNext = new AwgError('permission', 'sock_diag: Operation not permitted');
          return s;
        },
      }),
    );
    expect(code).toBe(4);
    expect(c.err()).toContain('awg: error [permission]: sock_diag: Operation not permitted');
  });
});

describe('awg top through the daemon', () => {
  async function daemon(core = new FakeCore()) {
    const socket = join(tmp(), 'awg.sock');
    const server = await startApiServer(core, { socketPath: socket });
    cleanups.push(() => server.close());
    return { core, socket };
  }
  const subscribed = async (core: FakeCore) => {
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (core.tops.size === 0) await new Promise((r) => setTimeout(r, 10));
    expect(core.tops.size).toBe(1);
  };

  it('--once --json: the first document the daemon sends, as sent; --json asks for connections', async () => {
    const { core, socket } = await daemon();
    const c = capture();
    const run = main(['node', 'awg', 'top', '--once', '--json', '--socket', socket], c.io);
    await subscribed(core);
    expect([...core.tops][0]!.req).toEqual({ intervalMs: 1000, connections: true });
    core.pushTop(sampleTop());
    expect(await run).toBe(0);
    expect(documents(c.out())).toEqual([sampleTop()]);
    // the client went away: the daemon's subscription ended
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (core.tops.size) await new Promise((r) => setTimeout(r, 10));
    expect(core.tops.size).toBe(0);
  });

  it('the live view over the API: the interval asked, no connections unless a filter needs them', async () => {
    const { core, socket } = await daemon();
    const c = capture();
    const run = main(['node', 'awg', 'top', '--once', '--interval', '2', '--socket', socket], c.io);
    await subscribed(core);
    expect([...core.tops][0]!.req).toEqual({ intervalMs: 2000, connections: false });
    core.pushTop(sampleTop());
    expect(await run).toBe(0);
    expect(c.out()).toContain('/usr/lib/firefox/firefox');
    expect(c.out()).toContain('↓8 Mbit');
  });

  it('the daemon ending the call ends awg top with its error', async () => {
    const { core, socket } = await daemon();
    const c = capture();
    const run = main(['node', 'awg', 'top', '--json', '--socket', socket], c.io);
    await subscribed(core);
    core.pushTop(sampleTop());
    core.endTops(new AwgError('driver', 'netlink: ENOBUFS'));
    expect(await run).toBe(6);
    expect(c.err()).toContain('awg: error [driver]: netlink: ENOBUFS');
    expect(documents(c.out())).toHaveLength(1);
  });
});
