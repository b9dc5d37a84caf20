/**
 * `awg placer` without a kernel: the daemon-side handle driving a fake child (config on start,
 * deltas, flush, stats over restarts, backoff, fatal errors, close), and the child's Node flags.
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LONG_RUNNING_NODE_FLAGS } from '../../../src/util/node-flags.js';
import {
  LineDecoder,
  encode,
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
import { MOUNT, WORK, FF } from './placer-fixtures.js';

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
