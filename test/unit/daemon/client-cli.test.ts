/** The CLI in client mode: awg apply/diff/status/down/events/confirm against a fake daemon. */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { eventsCommand } from '../../../src/cli/commands/events.js';
import { statusCommand } from '../../../src/cli/commands/status.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { StatusDocument } from '../../../src/daemon/status-document.js';
import { AwgError } from '../../../src/errors.js';
import { PlanDocument } from '../../../src/model/plan-document.js';
import { parseObservation } from '../../../src/pipeline/observation.js';
import { daemon, tmp } from './client-rig.js';
import { ALL_EVENTS, PEER_PUB, sampleObservation, samplePlan } from './server-fake-core.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const VALID = `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: {file: work.key}
    addresses: [10.9.0.2/32]
    peers:
      - publicKey: ${KEY}
        endpoint: vpn.example.com:51820
        allowedIPs: [0.0.0.0/0]
default: work
`;

function project(yaml = VALID): string {
  const d = tmp();
  writeFileSync(join(d, 'work.key'), KEY + '\n', { mode: 0o600 });
  writeFileSync(join(d, 'awg.yaml'), yaml);
  return join(d, 'awg.yaml');
}

function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (s) => (out += s), err: (s) => (err += s), colour: false },
    out: () => out,
    err: () => err,
  };
}

async function awg(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = capture();
  const code = await main(['node', 'awg', ...args], c.io);
  return { code, out: c.out(), err: c.err() };
}

describe('awg status through the daemon', () => {
  it('text view: state, objects, tunnels with peers; exit 0 when converged', async () => {
    const { core, socket } = await daemon();
    const r = await awg('status', '--socket', socket);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      'state: converged (config /etc/awg/awg.yaml, last reconcile 2026-11-22T05:00:00.000Z: unchanged in 12 ms)',
    );
    expect(r.out).toContain('link: 1\n  link/awg-work\n');
    expect(r.out).toContain(
      'tunnel work (wireguard, awg-work): up, handshake 17 s ago, rx 115.0 GiB, tx 42 B',
    );
    expect(r.out).toContain(`  peer ${PEER_PUB} at 192.0.2.1:51820: handshake 17 s ago`);
    expect(r.out).toContain('tunnel idle (amneziawg): down, handshake never');
    expect(core.calls).toEqual([{ method: 'status' }]);
  });

  it('exit 2 unless converged; --json carries the same facts', async () => {
    const { core, socket } = await daemon();
    core.statusValue = {
      ...core.statusValue,
      state: 'failed-closed',
      lastReconcile: {
        at: 't',
        outcome: 'failed-closed',
        durationMs: 3,
        error: { kind: 'driver', message: 'nft failed' },
      },
    };
    const r = await awg('status', '--socket', socket);
    expect(r.code).toBe(2);
    expect(r.out).toContain('error [driver]: nft failed');
    const j = await awg('status', '--json', '--socket', socket);
    expect(j.code).toBe(2);
    const doc = JSON.parse(j.out) as Record<string, unknown>;
    expect(doc).toMatchObject({
      state: 'failed-closed',
      config: '/etc/awg/awg.yaml',
      objects: core.statusValue.objects,
      tunnels: core.statusValue.tunnels,
    });
  });

  it('--json follows schema/status.schema.json (the daemon view, with what it follows); the text view names revision and validity', async () => {
    const { core, socket } = await daemon();
    core.statusValue = {
      ...core.statusValue,
      config: {
        revision: 'a'.repeat(40),
        checkoutRevision: 'b'.repeat(40),
        valid: false,
        error: 'hosts/a.yaml:3:5: bad',
        sources: ['/r/awg.yaml', '/r/hosts/a.yaml'],
        host: 'a',
        lastConverged: '2026-11-22T05:00:00.000Z',
        lastPlanChanges: 0,
        rejected: [
          {
            revision: 'b'.repeat(40),
            reason: 'tunnel(s) vpn not up within 60s of the apply',
            at: '2026-11-22T04:00:00.000Z',
          },
        ],
        verifying: { revision: 'c'.repeat(40), deadline: '2026-11-22T05:01:00.000Z' },
      },
      placement: {
        state: 'active',
        execs: 3,
        placed: 2,
        errors: 0,
        mode: 'gated',
        gateMarks: ['/'],
      },
    };
    const j = await awg('status', '--json', '--socket', socket);
    const doc = StatusDocument.parse(JSON.parse(j.out));
    expect(doc.source).toBe('daemon');
    expect(doc.source === 'daemon' && doc.configState?.revision).toBe('a'.repeat(40));
    const schema = JSON.parse(
      readFileSync(new URL('../../../schema/status.schema.json', import.meta.url), 'utf8'),
    ) as object;
    const ajv = new Ajv2020({ strict: false });
    expect(ajv.validate(schema, JSON.parse(j.out)), JSON.stringify(ajv.errors)).toBe(true);
    const t = await awg('status', '--socket', socket);
    expect(t.out).toContain(
      `config: INVALID (the last good config keeps running), revision ${'a'.repeat(12)}, checkout at ${'b'.repeat(12)}, host a, converged 2026-11-22T05:00:00.000Z\nconfig error: hosts/a.yaml:3:5: bad\noverlays: /r/hosts/a.yaml\nrevision ${'c'.repeat(12)}: checking after the apply until 2026-11-22T05:01:00.000Z (reverted if it fails)\nrevision ${'b'.repeat(12)} REJECTED at 2026-11-22T04:00:00.000Z: tunnel(s) vpn not up within 60s of the apply; revision ${'a'.repeat(12)} keeps running until a newer commit\n`,
    );
  });

  it('an error from the daemon prints as in direct mode, with its exit code', async () => {
    const { core, socket } = await daemon();
    core.fail.status = new AwgError('permission', 'not allowed', { hint: 'be root' });
    const r = await awg('status', '--socket', socket);
    expect(r.code).toBe(4);
    expect(r.err).toBe('awg: error [permission]: not allowed\nhint: be root\n');
  });

  it('--observed-out: the daemon makes the record (its applied resources, claims, facts); the status as usual', async () => {
    const { core, socket } = await daemon();
    const file = join(tmp(), 'observed.json');
    const r = await awg('status', '--json', '--observed-out', file, '--socket', socket);
    expect(r.code).toBe(0);
    expect(StatusDocument.parse(JSON.parse(r.out)).source).toBe('daemon');
    expect(r.err).toBe(`recorded the observation in ${file}\n`);
    expect(core.calls).toEqual([{ method: 'observation' }, { method: 'status' }]);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(sampleObservation());
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const parsed = parseObservation(readFileSync(file, 'utf8'), file);
    expect(parsed).toMatchObject({
      lastApplied: core.observationValue.lastApplied,
      facts: core.observationValue.facts,
      host: 'laptop-1',
      cgroupRoot: 'awg',
    });
    // the daemon's refusal: its error and exit code, no file
    core.fail.observation = new AwgError('permission', 'not allowed');
    const other = join(tmp(), 'refused.json');
    const d = await awg('status', '--observed-out', other, '--socket', socket);
    expect(d.code).toBe(4);
    expect(d.err).toBe('awg: error [permission]: not allowed\n');
    expect(existsSync(other)).toBe(false);
  });

  it('--watch without a daemon is a clear error (exit 3), not a direct-mode view', async () => {
    const r = await awg('status', '--watch', '--socket', join(tmp(), 'none.sock'));
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /status --watch needs the awg daemon: no awg daemon answers on .*none\.sock \(ENOENT\)/,
    );
  });

  it('--watch (not a TTY): the view once, then each event as a line and the headline when it changes', async () => {
    const { core, socket } = await daemon();
    const c = capture();
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const done = statusCommand(c.io, { socket, watch: true }, { tty: false, until });
    await expect.poll(() => core.subscribers).toBe(1);
    await expect.poll(() => c.out()).toContain('tunnel work');
    core.statusValue = { ...core.statusValue, state: 'drifted' };
    core.emit(ALL_EVENTS[3]!);
    await expect.poll(() => c.out()).toContain('state: drifted');
    stop();
    expect(await done).toBe(0);
    const lines = c.out().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^state: converged/);
    expect(lines.at(-2)).toBe(
      '2026-11-22T05:00:01.000Z drift repaired: route/52001/0.0.0.0/0, rule/5200',
    );
    expect(lines.at(-1)).toMatch(/^state: drifted \(/);
    expect(c.out()).not.toContain('\x1b[');
  });

  it('--watch on a TTY redraws in place with recent events', async () => {
    const { core, socket } = await daemon();
    const c = capture();
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const done = statusCommand(c.io, { socket, watch: true }, { tty: true, until });
    await expect.poll(() => core.subscribers).toBe(1);
    core.emit(ALL_EVENTS[6]!);
    await expect
      .poll(() => c.out())
      .toContain('recent events:\n  2026-11-22T05:00:04.000Z tunnel work up\n');
    stop();
    expect(await done).toBe(0);
    expect(c.out().startsWith('\x1b[H\x1b[2J')).toBe(true);
  });

  it('--watch --no-reconnect ends with exit 6 when the daemon goes away', async () => {
    const { core, socket, stop } = await daemon();
    const c = capture();
    const done = statusCommand(
      c.io,
      { socket, watch: true, reconnect: false },
      { tty: false, until: new Promise(() => {}) },
    );
    await expect.poll(() => core.subscribers).toBe(1);
    await stop();
    expect(await done).toBe(6);
    expect(c.err()).toMatch(/awg: error \[driver\]/);
  });
});

describe('awg apply through the daemon', () => {
  it('sends the absolute config path; prints the plan and the summary as direct mode does', async () => {
    const { core, socket } = await daemon();
    const file = project();
    const r = await awg('apply', '-f', file, '--socket', socket);
    expect(r.code).toBe(0);
    expect(core.calls).toEqual([{ method: 'apply', arg: { configPath: resolve(file) } }]);
    expect(r.out).toBe('Applied: 3 change(s), 4 mutation(s); verified.\n');
    expect(r.err).toContain('link:\n  + link/awg-work');
    expect(r.err).toContain('[drift]');
  });

  it('--json: the result document with the plan document (config as given)', async () => {
    const { socket } = await daemon();
    const file = project();
    const r = await awg('apply', '-f', file, '--json', '--socket', socket);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as {
      outcome: string;
      mutations: number;
      changed: number;
      plan: unknown;
    };
    expect(doc).toMatchObject({
      outcome: 'converged',
      mutations: 4,
      changed: 3,
      rollbackErrors: [],
    });
    expect(PlanDocument.parse(doc.plan)).toEqual({ ...samplePlan(), config: file });
  });

  it('--dry-run is passed on; the daemon plans, nothing changes', async () => {
    const { core, socket } = await daemon();
    const r = await awg('apply', '-f', project(), '--dry-run', '--socket', socket);
    expect(r.code).toBe(0);
    expect((core.calls[0]!.arg as { dryRun?: boolean }).dryRun).toBe(true);
    expect(r.out).toBe('Dry run: nothing was changed.\n');
  });

  it('a failed apply: the error, the fail-closed note and the exit code of its kind', async () => {
    const { core, socket } = await daemon();
    core.applyValue = {
      outcome: 'failed-closed',
      plan: samplePlan(),
      mutations: 2,
      error: { kind: 'verification', message: 'route table 52001 differs after apply' },
    };
    const r = await awg('apply', '-f', project(), '--socket', socket);
    expect(r.code).toBe(7);
    expect(r.err).toContain('awg: error [verification]: route table 52001 differs after apply\n');
    expect(r.err).toContain('traffic is blocked (fail-closed)');
  });

  it('an invalid file is reported as file:line:col and never sent to the daemon', async () => {
    const { core, socket } = await daemon();
    const file = project(VALID.replace('addresses: [10.9.0.2/32]', 'addresses: [10.9.0.2/99]'));
    const r = await awg('apply', '-f', file, '--socket', socket);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/awg\.yaml:\d+:\d+: .*addresses/);
    expect(r.err).toContain('invalid configuration; nothing was applied');
    expect(core.calls).toEqual([]);
  });

  it('--confirm-timeout N: passed to the daemon; the deadline and `awg confirm` are shown', async () => {
    const { core, socket } = await daemon();
    const r = await awg('apply', '-f', project(), '--confirm-timeout', '90', '--socket', socket);
    expect(r.code).toBe(0);
    expect((core.calls[0]!.arg as { confirmTimeoutSec?: number }).confirmTimeoutSec).toBe(90);
    expect(r.out).toContain(
      'Confirm with `awg confirm` by 2026-11-22T05:01:30.000Z, or the change is reverted.',
    );
  });

  it('--confirm-timeout without a daemon (or with --direct): exit 3 and nothing applied', async () => {
    const file = project();
    const r = await awg(
      'apply',
      '-f',
      file,
      '--confirm-timeout',
      '30',
      '--socket',
      join(tmp(), 'none.sock'),
    );
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/--confirm-timeout needs the awg daemon/);
    expect(r.err).toMatch(/hint: start it with `awg service install`/);
    const { core, socket } = await daemon();
    const d = await awg(
      'apply',
      '-f',
      file,
      '--confirm-timeout',
      '30',
      '--socket',
      socket,
      '--direct',
    );
    expect(d.code).toBe(3);
    expect(core.calls).toEqual([]);
  });

  it('--confirm-timeout must be whole seconds', async () => {
    const r = await awg(
      'apply',
      '-f',
      project(),
      '--confirm-timeout',
      '1.5',
      '--socket',
      join(tmp(), 'none.sock'),
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--confirm-timeout 1\.5/);
  });
});

describe('awg diff / down / confirm / events through the daemon', () => {
  it('diff: text plan, exit 2 with changes, 0 without; --json is the plan document', async () => {
    const { core, socket } = await daemon();
    const file = project();
    const r = await awg('diff', '-f', file, '--socket', socket);
    expect(r.code).toBe(2);
    expect(r.out).toContain('+ link/awg-work');
    expect(core.calls).toEqual([{ method: 'diff', arg: { configPath: resolve(file) } }]);
    const j = await awg('diff', '-f', file, '--json', '--socket', socket);
    expect(PlanDocument.parse(JSON.parse(j.out))).toEqual({ ...samplePlan(), config: file });
    core.diffValue = {
      plan: { ...samplePlan(), changes: [], foreign: [], warnings: [] },
      changes: false,
    };
    const n = await awg('diff', '-f', file, '--socket', socket);
    expect(n.code).toBe(0);
    expect(n.out).toContain('No changes. The system matches the configuration.');
  });

  it('diff: a daemon-side error is exit 1 with its issues', async () => {
    const { core, socket } = await daemon();
    core.fail.diff = new AwgError('invalid-config', 'secrets unreadable', {
      issues: [
        {
          file: '/x/awg.yaml',
          line: 5,
          col: 17,
          path: 'tunnels.work.privateKey',
          message: 'cannot read work.key',
          severity: 'error',
        },
      ],
    });
    const r = await awg('diff', '-f', project(), '--socket', socket);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'awg: error [invalid-config]: secrets unreadable\n/x/awg.yaml:5:17: tunnels.work.privateKey: cannot read work.key\n',
    );
  });

  it('down: through the daemon; --json result', async () => {
    const { core, socket } = await daemon();
    const r = await awg('down', '--socket', socket);
    expect(r.code).toBe(0);
    expect(r.out).toBe('Removed 2 object(s) owned by awg.\n');
    const j = await awg('down', '--json', '--socket', socket);
    expect(JSON.parse(j.out)).toEqual({ removed: core.downValue.removed, mutations: 2 });
    expect(core.calls.map((c) => c.method)).toEqual(['down', 'down']);
  });

  it('down: an error keeps its exit code (verification 7)', async () => {
    const { core, socket } = await daemon();
    core.fail.down = new AwgError('verification', 'down left objects behind: link/awg-work');
    const r = await awg('down', '--socket', socket);
    expect(r.code).toBe(7);
  });

  it('confirm: exit 0 when something was waiting, 2 when not; needs the daemon', async () => {
    const { core, socket } = await daemon();
    expect(await awg('confirm', '--socket', socket)).toMatchObject({
      code: 0,
      out: 'Confirmed: the applied change stays.\n',
    });
    core.confirmValue = { confirmed: false };
    expect((await awg('confirm', '--socket', socket)).code).toBe(2);
    const none = await awg('confirm', '--socket', join(tmp(), 'none.sock'));
    expect(none.code).toBe(3);
    expect(none.err).toMatch(/awg confirm needs the awg daemon/);
  });

  it('events: text lines as `awg up` prints them, or JSON lines that parse back to the events', async () => {
    for (const json of [false, true]) {
      const { core, socket } = await daemon();
      const c = capture();
      let stop!: () => void;
      const until = new Promise<void>((r) => (stop = r));
      const done = eventsCommand(c.io, { socket, json }, { until });
      await expect.poll(() => core.subscribers).toBe(1);
      for (const e of ALL_EVENTS) core.emit(e);
      await expect.poll(() => c.out().split('\n').length - 1).toBe(ALL_EVENTS.length);
      stop();
      expect(await done).toBe(0);
      const lines = c.out().trimEnd().split('\n');
      if (json) expect(lines.map((l) => JSON.parse(l) as DaemonEvent)).toEqual(ALL_EVENTS);
      else {
        expect(lines[0]).toBe('2026-11-22T05:00:00.000Z reconcile started (drift-timer)');
        expect(lines).toContain(
          '2026-11-22T05:01:06.000Z reverted: confirm timeout expired without confirm()',
        );
      }
      await expect.poll(() => core.subscribers).toBe(0);
    }
  });

  it('events --no-reconnect: exit 6 when the daemon stops; 3 when there is none', async () => {
    const { core, socket, stop } = await daemon();
    const c = capture();
    const done = eventsCommand(
      c.io,
      { socket, reconnect: false },
      { until: new Promise(() => {}) },
    );
    await expect.poll(() => core.subscribers).toBe(1);
    await stop();
    expect(await done).toBe(6);
    expect((await awg('events', '--socket', join(tmp(), 'none.sock'))).code).toBe(3);
  });
});
