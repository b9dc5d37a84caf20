/**
 * The in-process engine driver over in-memory TUN and bind fakes, against a plain Device as
 * the peer: create → observed spec equals the desired one (no-op plan); a handshake is
 * reported through onChange and stats; an update keeps the session (no new handshake); a
 * TUN failure or a delete stops the engine and observation no longer reports it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepare, type Prepared } from '../../../src/pipeline/prepare.js';
import { Device } from '../../../src/dataplane/device/device.js';
import { MemoryNetwork } from '../../../src/dataplane/conn/memory.fake.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import type { AwgError } from '../../../src/errors.js';
import type { Change } from '../../../src/model/change.js';
import type { Resource } from '../../../src/model/resources.js';
import { plan } from '../../../src/reconciler/plan.js';
import { createInprocEngineHost, type EngineChange } from '../../../src/resources/engine/inproc.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { fingerprintKeyOf } from '../../../src/util/host-key.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';
import { HANDSHAKE_EVENT_DELAY_MS } from '../../../src/dataplane/device/device.js';
import { eventually } from '../../helpers/eventually.js';

const me = wgKeyPair();
const srv = wgKeyPair();
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

function ipv4(src: string, dst: string, payload = 'ping'): Uint8Array {
  const body = Buffer.from(payload);
  const b = Buffer.alloc(20 + body.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = 17;
  src.split('.').forEach((x, i) => (b[12 + i] = Number(x)));
  dst.split('.').forEach((x, i) => (b[16 + i] = Number(x)));
  body.copy(b, 20);
  return b;
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

class FailingTun extends MemoryTun {
  private cb: ((e: AwgError) => void) | undefined;
  gone = false;
  onError(cb: (e: AwgError) => void): void {
    this.cb = cb;
  }
  flags(): number {
    if (this.gone) throw new Error('EBADFD');
    return 0x1001;
  }
  fail(): void {
    this.gone = true;
    this.cb?.(new Error('device deleted') as AwgError);
  }
}

describe('in-process engine driver', () => {
  let dir: string;
  let net: MemoryNetwork;
  let server: Device;
  let serverTun: MemoryTun;
  let tuns: FailingTun[];
  /** the host's state: its fingerprint key keys both the plan and what the engine host observes */
  let state: MemoryStateStore;

  async function desired(allowed: string[]): Promise<{ p: Prepared; engine: Resource<'engine'> }> {
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: "${me.privateKey}"\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${srv.publicKey}"\n        endpoint: 10.0.0.2:51820\n        allowedIPs: [${allowed.join(', ')}]\n`,
    );
    const r = await prepare(file, {
      facts: { cgroupNftPrefix: '' },
      fingerprintKey: () => fingerprintKeyOf(state),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const engine = r.prepared.desired.resources.find(
      (x): x is Resource<'engine'> => x.kind === 'engine',
    )!;
    return { p: r.prepared, engine };
  }

  function ctx(p: Prepared): ApplyContext {
    return {
      exec: new RecordingExec(),
      reporter: silentReporter,
      state,
      dryRun: false,
      claims: DEFAULT_CLAIMS,
      secrets: p.secrets,
    };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-inproc-'));
    net = new MemoryNetwork();
    serverTun = new MemoryTun('srv0');
    server = new Device({ tun: serverTun, bind: net.bind('10.0.0.2') });
    await server.ipcSet(
      `set=1\nprivate_key=${hex(srv.privateKey)}\nlisten_port=51820\npublic_key=${hex(me.publicKey)}\nallowed_ip=10.200.50.1/32\n\n`,
    );
    await server.up();
    tuns = [];
    state = new MemoryStateStore();
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function host() {
    const changes: EngineChange[] = [];
    const h = createInprocEngineHost({
      uapi: false,
      io: {
        openTun: (link) => {
          const t = new FailingTun(link);
          tuns.push(t);
          return t;
        },
        bind: () => net.bind('10.0.0.1'),
      },
    });
    h.onChange((c) => changes.push(c));
    return { h, changes };
  }

  it('create → observed as desired; handshake reported; update keeps the session; delete stops it', async () => {
    const { h, changes } = host();
    const { p, engine } = await desired(['10.200.50.0/24']);
    const c = ctx(p);
    const scope = { desired: p.desired, claims: DEFAULT_CLAIMS, state: c.state };
    expect((await h.driver.observe(scope)).resources).toEqual([]);

    expect(
      await h.driver.apply(
        {
          kind: 'engine',
          id: engine.id,
          action: 'create',
          after: engine.spec,
          reason: 'new',
          cause: 'initial',
        } as Change<'engine'>,
        c,
      ),
    ).toBe('changed');
    const obs = await h.driver.observe(scope);
    expect(obs.resources).toHaveLength(1);
    expect(
      plan({ resources: [engine], warnings: [] }, { resources: obs.resources, foreign: [] })
        .changes,
    ).toEqual([]);
    expect(changes).toEqual([{ type: 'started', tunnel: 'vpn' }]);

    tuns[0]!.inject(ipv4('10.200.50.1', '10.200.50.2', 'one'));
    await flush();
    await eventually(() => expect(changes.filter((x) => x.type === 'handshake')).toHaveLength(1)); // emitted after the packet
    expect(serverTun.written.map((b) => Buffer.from(b).subarray(20).toString())).toEqual(['one']);
    const st = h.stats();
    expect(st).toHaveLength(1);
    expect(st[0]!.peers[0]).toMatchObject({ publicKey: srv.publicKey, endpoint: '10.0.0.2:51820' });
    expect(st[0]!.peers[0]!.lastHandshakeMs).toBeGreaterThan(0);
    expect(st[0]!.peers[0]!.txBytes).toBeGreaterThan(0);

    const next = await desired(['10.200.50.0/24', '10.200.51.0/24']);
    const p2 = plan(next.p.desired, {
      resources: (await h.driver.observe(scope)).resources,
      foreign: [],
    }).changes.filter((x) => x.kind === 'engine');
    expect(p2.map((x) => x.action)).toEqual(['update']);
    expect(await h.driver.apply(p2[0] as Change<'engine'>, ctx(next.p))).toBe('changed');
    tuns[0]!.inject(ipv4('10.200.50.1', '10.200.50.2', 'two'));
    await flush();
    await new Promise((r) => setTimeout(r, 2 * HANDSHAKE_EVENT_DELAY_MS)); // a new handshake's event would be out by now
    expect(changes.filter((x) => x.type === 'handshake')).toHaveLength(1);
    expect(serverTun.written.map((b) => Buffer.from(b).subarray(20).toString())).toEqual([
      'one',
      'two',
    ]);
    expect(tuns).toHaveLength(1);
    expect(
      plan(
        { resources: [next.engine], warnings: [] },
        { resources: (await h.driver.observe(scope)).resources, foreign: [] },
      ).changes,
    ).toEqual([]);

    expect(
      await h.driver.apply(
        {
          kind: 'engine',
          id: engine.id,
          action: 'delete',
          before: next.engine.spec,
          reason: 'gone',
          cause: 'config',
        } as Change<'engine'>,
        c,
      ),
    ).toBe('changed');
    expect((await h.driver.observe(scope)).resources).toEqual([]);
    expect(changes.at(-1)).toMatchObject({ type: 'stopped', tunnel: 'vpn' });
    expect(tuns[0]!.isClosed).toBe(true);
  });

  it('a TUN that fails (link deleted) stops the engine; observe no longer reports it', async () => {
    const { h, changes } = host();
    const { p, engine } = await desired(['10.200.50.0/24']);
    const c = ctx(p);
    await h.driver.apply(
      {
        kind: 'engine',
        id: engine.id,
        action: 'create',
        after: engine.spec,
        reason: 'new',
        cause: 'initial',
      } as Change<'engine'>,
      c,
    );
    tuns[0]!.fail();
    await flush();
    expect(changes.at(-1)).toMatchObject({ type: 'stopped', tunnel: 'vpn' });
    expect(
      (await h.driver.observe({ desired: p.desired, claims: DEFAULT_CLAIMS, state: c.state }))
        .resources,
    ).toEqual([]);
  });

  it('observe drops an engine whose TUN vanished without an error callback', async () => {
    const { h } = host();
    const { p, engine } = await desired(['10.200.50.0/24']);
    const c = ctx(p);
    await h.driver.apply(
      {
        kind: 'engine',
        id: engine.id,
        action: 'create',
        after: engine.spec,
        reason: 'new',
        cause: 'initial',
      } as Change<'engine'>,
      c,
    );
    tuns[0]!.gone = true;
    expect(
      (await h.driver.observe({ desired: p.desired, claims: DEFAULT_CLAIMS, state: c.state }))
        .resources,
    ).toEqual([]);
    expect(h.tunnels()).toEqual([]);
  });

  it('dry run mutates nothing', async () => {
    const { h } = host();
    const { p, engine } = await desired(['10.200.50.0/24']);
    const c = { ...ctx(p), exec: new RecordingExec({}, true), dryRun: true };
    expect(
      await h.driver.apply(
        {
          kind: 'engine',
          id: engine.id,
          action: 'create',
          after: engine.spec,
          reason: 'new',
          cause: 'initial',
        } as Change<'engine'>,
        c,
      ),
    ).toBe('changed');
    expect(tuns).toEqual([]);
    expect(h.tunnels()).toEqual([]);
  });
});
