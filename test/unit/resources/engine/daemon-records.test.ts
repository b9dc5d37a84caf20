/**
 * Engines hosted by the daemon leave a record (host: daemon) so that a direct-mode
 * observation (`awg status --direct` while a daemon runs) sees them, and nothing outside the
 * daemon ever kills them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { ProxyEngineSpec, WgEngineSpec } from '../../../../src/model/resources.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import {
  createProcessEngineDriver,
  daemonEngineRecord,
  type EngineRecord,
} from '../../../../src/resources/engine/process-host.js';
import { createInprocEngineHost } from '../../../../src/resources/engine/inproc.js';
import { processIdentity } from '../../../../src/resources/engine/process-identity.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

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

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** the record a daemon with this pid would have written (its own boot id and start time) */
const recordOf = (pid: number): EngineRecord => ({
  ...daemonEngineRecord(spec, ''),
  pid,
  ...processIdentity(pid),
});

/** a live process whose argv says `daemon`, as `awg daemon` does */
function fakeDaemon(): number {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'daemon'], {
    stdio: 'ignore',
  });
  children.push(c);
  return c.pid!;
}

const scope = (state: MemoryStateStore) => ({
  desired: { resources: [], warnings: [] },
  claims: DEFAULT_CLAIMS,
  state,
});
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
const del = (s: ProxyEngineSpec): Change<'engine'> => ({
  kind: 'engine',
  id: 'engine/px',
  action: 'delete',
  before: s,
  reason: 'r',
  cause: 'config',
});

describe('daemon-hosted engine records (direct mode)', () => {
  it('a live daemon: its engine is observed; a dead one: not', async () => {
    const state = new MemoryStateStore();
    const d = createProcessEngineDriver({ env: {} });
    state.set<EngineRecord>('engine-px', recordOf(fakeDaemon()));
    expect((await d.observe(scope(state))).resources.map((r) => r.spec)).toEqual([spec]);
    state.set<EngineRecord>('engine-px', { ...daemonEngineRecord(spec, ''), pid: 2 ** 22 + 7 });
    expect((await d.observe(scope(state))).resources).toEqual([]);
  });

  it('a pid reused by another program is not the daemon', async () => {
    const state = new MemoryStateStore();
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(other);
    state.set<EngineRecord>('engine-px', recordOf(other.pid!));
    expect((await createProcessEngineDriver({ env: {} }).observe(scope(state))).resources).toEqual(
      [],
    );
  });

  it('direct mode never kills the daemon for its engine: a conflict; a dead daemon’s record is only forgotten', async () => {
    const state = new MemoryStateStore();
    const d = createProcessEngineDriver({ env: {} });
    const pid = fakeDaemon();
    state.set<EngineRecord>('engine-px', recordOf(pid));
    await expect(d.apply(del(spec), ctx(state))).rejects.toMatchObject({
      kind: 'conflict',
      message: expect.stringContaining('runs in the awg daemon'),
    });
    expect(() => process.kill(pid, 0)).not.toThrow();
    state.set<EngineRecord>('engine-px', { ...daemonEngineRecord(spec, ''), pid: 2 ** 22 + 7 });
    expect(await d.apply(del(spec), ctx(state))).toBe('changed');
    expect(state.get('engine-px')).toBeUndefined();
  });

  it('the in-process host does not count its own records as detached engines, nor adopt them', async () => {
    const state = new MemoryStateStore();
    const host = createInprocEngineHost({ env: {}, uapi: false });
    // a record this process wrote for an engine it no longer runs (e.g. a runtime that died)
    state.set<EngineRecord>('engine-px', daemonEngineRecord(spec, ''));
    expect((await host.driver.observe(scope(state))).resources).toEqual([]);
    expect(
      await host.adopt(
        { resources: [{ kind: 'engine', id: 'engine/px', deps: [], spec }], warnings: [] },
        ctx(state),
      ),
    ).toEqual([]);
    await host.closeAll();
  });

  it('a replace that changes the family (proxy → WireGuard) stops the proxy runtime before it starts the device', async () => {
    const state = new MemoryStateStore();
    const host = createInprocEngineHost({ env: {}, uapi: false });
    const c = ctx(state);
    await host.driver.apply(
      {
        kind: 'engine',
        id: 'engine/px',
        action: 'create',
        after: spec,
        reason: 'r',
        cause: 'config',
      },
      c,
    );
    expect((await host.driver.observe(scope(state))).resources.map((r) => r.spec.type)).toEqual([
      'socks5',
    ]);
    const wg: WgEngineSpec = {
      tunnel: 'px',
      type: 'wireguard',
      link: 'awgt-no-such-tun',
      config: { privateKey: 'unresolved:x', listenPort: 0, fwmark: 0, peers: [] },
    };
    // the device cannot start here (no such TUN, no key): what matters is what is left running
    await expect(
      host.driver.apply(
        {
          kind: 'engine',
          id: 'engine/px',
          action: 'replace',
          before: spec,
          after: wg,
          reason: 'r',
          cause: 'config',
        },
        c,
      ),
    ).rejects.toThrow();
    expect((await host.driver.observe(scope(state))).resources).toEqual([]);
    expect(c.reporter.mutations).toContain('[engine] stop px (its type changes to wireguard)');
    await host.closeAll();
  });
});
