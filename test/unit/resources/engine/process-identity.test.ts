/**
 * Detached-engine records carry the boot id and the process start time: a pid that now
 * belongs to another process (even another `awg engine`) is neither observed as the engine
 * nor signalled; the process the record names is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { ProxyEngineSpec } from '../../../../src/model/resources.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import {
  createProcessEngineDriver,
  daemonEngineRecord,
  type EngineRecord,
} from '../../../../src/resources/engine/process-host.js';
import {
  currentBootId,
  parseStatStartTime,
  processIdentity,
  sameProcess,
  signalIdentified,
} from '../../../../src/resources/engine/process-identity.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

const linux = process.platform === 'linux';

const spec: ProxyEngineSpec = {
  tunnel: 'px',
  type: 'socks5',
  config: {
    server: '127.0.0.1',
    port: 1,
    redirectPort: 0,
    redirectPortDirect: 0,
    fwmark: 0x0f000000,
    dns: [],
    auth: null,
    udp: false,
  },
};

const dir = mkdtempSync(join(tmpdir(), 'awgt-ident-'));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** a live process whose argv says `engine`, as a detached `awg engine` does */
function fakeEngine(): ChildProcess {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'engine'], {
    stdio: 'ignore',
  });
  children.push(c);
  return c;
}

const ctx = (state: MemoryStateStore) => {
  const reporter = new MemoryReporter();
  return {
    exec: new ProcessExec(reporter),
    reporter,
    state,
    dryRun: false,
    claims: DEFAULT_CLAIMS,
  };
};
const del: Change<'engine'> = {
  kind: 'engine',
  id: 'engine/px',
  action: 'delete',
  before: spec,
  reason: 'r',
  cause: 'config',
};
const detachedRecord = (pid: number, extra: Partial<EngineRecord> = {}): EngineRecord => ({
  tunnel: 'px',
  link: 'px',
  pid,
  uapiPath: join(dir, 'px.sock'),
  spec,
  ...extra,
});
const running = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const exited = (c: ChildProcess) =>
  new Promise<void>((r) =>
    c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()),
  );

describe('/proc/<pid>/stat start time', () => {
  it('is field 22, counted after the last parenthesis (comm may hold spaces and parentheses)', () => {
    const tail = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21';
    expect(parseStatStartTime(`42 (awg) ${tail}`)).toBe('987654');
    expect(parseStatStartTime(`42 (a) (b c) ${tail}`)).toBe('987654');
    expect(parseStatStartTime(`42 (x)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 55 20`)).toBe(
      '55',
    );
  });
  it('a zombie, a short line or a non-number gives none', () => {
    expect(
      parseStatStartTime('42 (awg) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20'),
    ).toBeUndefined();
    expect(parseStatStartTime('42 (awg) S 1 2 3')).toBeUndefined();
    expect(
      parseStatStartTime('42 (awg) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -1 20'),
    ).toBeUndefined();
    expect(parseStatStartTime('garbage')).toBeUndefined();
  });
});

describe.skipIf(!linux)('engine records carry the boot id and start time', () => {
  it('this process: the boot id of /proc and the start time of its stat line', () => {
    const id = processIdentity(process.pid)!;
    expect(id.bootId).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(id.startTime).toBe(
      parseStatStartTime(readFileSync(`/proc/${process.pid}/stat`, 'utf8')),
    );
    expect(daemonEngineRecord(spec, '')).toMatchObject({
      pid: process.pid,
      bootId: id.bootId,
      startTime: id.startTime,
    });
    expect(processIdentity(2 ** 22 + 7)).toBeUndefined();
  });

  it('the recorded engine is signalled on delete and the record forgotten', async () => {
    const c = fakeEngine();
    const state = new MemoryStateStore();
    state.set<EngineRecord>('engine-px', detachedRecord(c.pid!, processIdentity(c.pid!)));
    expect(await createProcessEngineDriver({ env: {} }).apply(del, ctx(state))).toBe('changed');
    await exited(c);
    expect(c.signalCode).toBe('SIGTERM');
    expect(state.get('engine-px')).toBeUndefined();
  });

  it('a pid now held by another `awg engine` (other start time) is neither observed nor signalled', async () => {
    const c = fakeEngine();
    const id = processIdentity(c.pid!)!;
    const state = new MemoryStateStore();
    const d = createProcessEngineDriver({ env: {} });
    // the engine the record names started at another time; the pid was reused since
    state.set<EngineRecord>(
      'engine-px',
      detachedRecord(c.pid!, { ...id, startTime: String(BigInt(id.startTime) - 1n) }),
    );
    expect(
      (await d.observe({ desired: { resources: [], warnings: [] }, claims: DEFAULT_CLAIMS, state }))
        .resources,
    ).toEqual([]);
    expect(await d.apply(del, ctx(state))).toBe('changed');
    expect(state.get('engine-px')).toBeUndefined();
    expect(running(c.pid!)).toBe(true);
    expect(c.signalCode).toBeNull();
  });

  it('a record from another boot is not this process either', async () => {
    const c = fakeEngine();
    const id = processIdentity(c.pid!)!;
    const state = new MemoryStateStore();
    state.set<EngineRecord>(
      'engine-px',
      detachedRecord(c.pid!, { ...id, bootId: '00000000-0000-4000-8000-000000000000' }),
    );
    expect(await createProcessEngineDriver({ env: {} }).apply(del, ctx(state))).toBe('changed');
    expect(running(c.pid!)).toBe(true);
  });

  it('signalIdentified: only the identified process, never without an identity', async () => {
    const c = fakeEngine();
    const id = processIdentity(c.pid!)!;
    expect(sameProcess({ pid: c.pid!, ...id })).toBe(true);
    expect(await signalIdentified({ pid: c.pid! }, 'SIGTERM')).toBe(false);
    expect(await signalIdentified({ pid: c.pid!, ...id, startTime: '1' }, 'SIGTERM')).toBe(false);
    expect(running(c.pid!)).toBe(true);
    expect(await signalIdentified({ pid: c.pid!, ...id }, 'SIGKILL')).toBe(true);
    await exited(c);
    expect(c.signalCode).toBe('SIGKILL');
    // gone: nothing to signal, whatever holds the number next
    expect(await signalIdentified({ pid: c.pid!, ...id }, 'SIGKILL')).toBe(false);
    expect(currentBootId()).toBe(id.bootId);
  });
});
