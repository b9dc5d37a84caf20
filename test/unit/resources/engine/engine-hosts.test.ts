/**
 * The engine hosts of `engine: kernel` and `engine: {external}` and the driver that routes
 * between them, with fakes: an external "program" is our own Device on an in-memory TUN,
 * reached through its real UAPI text (ipcSet/ipcGet), started and killed by a fake spawner
 * that also does what wireguard-go does to the link (its MTU to 1420 on attach); the kernel is
 * a fake generic netlink device that applies WG_CMD_SET_DEVICE's semantics. The same
 * programs against real processes, TUNs and traffic: test/netns/engine-external.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryNetwork } from '../../../../src/dataplane/conn/memory.fake.js';
import { Device } from '../../../../src/dataplane/device/device.js';
import { MemoryTun } from '../../../../src/dataplane/tun/memory.fake.js';
import type { AnyChange, Change } from '../../../../src/model/change.js';
import type { Resource, WgEngineSpec } from '../../../../src/model/resources.js';
import type { WgDevice, WgDeviceSet } from '../../../../src/native/wgnl.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import { prepare, type Prepared } from '../../../../src/pipeline/prepare.js';
import { plan } from '../../../../src/reconciler/plan.js';
import type { ApplyContext, Driver } from '../../../../src/resources/driver.js';
import {
  createExternalEngineHost,
  type ExternalDeps,
  type ExternalHostOptions,
  type LinkState,
} from '../../../../src/resources/engine/external-host.js';
import { engineDriver } from '../../../../src/resources/engine/hosts.js';
import { createKernelEngineDriver } from '../../../../src/resources/engine/kernel-host.js';
import type { EngineRecord } from '../../../../src/resources/engine/process-host.js';
import { parseGet } from '../../../../src/resources/engine/uapi-client.js';
import { fingerprintKeyOf } from '../../../../src/util/host-key.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { wgKeyPair } from '../../../helpers/awg.js';
import { RecordingExec } from '../../../helpers/exec.js';

const me = wgKeyPair();
const srv = wgKeyPair();
const other = wgKeyPair();
const intruder = wgKeyPair();
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

let dir: string;
let net: MemoryNetwork;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-hosts-'));
  net = new MemoryNetwork();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function config(engine: string, extraPeer = false): string {
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    engine: ${engine}
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.1/24]
    mtu: 1380
    peers:
      - publicKey: "${srv.publicKey}"
        endpoint: 10.0.0.2:51820
        allowedIPs: [10.200.60.0/24]
${extraPeer ? `      - publicKey: "${other.publicKey}"\n        allowedIPs: [10.200.70.0/24]\n` : ''}`;
}

async function prepared(state: MemoryStateStore, yaml: string): Promise<Prepared> {
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, yaml);
  const r = await prepare(file, {
    facts: { cgroupNftPrefix: '' },
    fingerprintKey: () => fingerprintKeyOf(state),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.prepared;
}

const engineOf = (p: Prepared) =>
  p.desired.resources.find((x): x is Resource<'engine'> => x.kind === 'engine')!;

function ctxOf(state: MemoryStateStore, p: Prepared, exec = new RecordingExec()): ApplyContext {
  return {
    exec,
    reporter: new MemoryReporter(),
    state,
    dryRun: false,
    claims: DEFAULT_CLAIMS,
    secrets: p.secrets,
  };
}

/** the delete of the engine `state` records (what `awg down` plans) */
const removal = (state: MemoryStateStore): Change<'engine'> => ({
  kind: 'engine',
  id: 'engine/vpn',
  action: 'delete',
  before: state.get<EngineRecord>('engine-vpn')!.spec,
  reason: 'not desired',
  cause: 'config',
});

/** the engine changes of a plan of `p` against what `driver` observes */
async function enginePlan(driver: Driver<'engine'>, p: Prepared, state: MemoryStateStore) {
  const observed = await driver.observe({ desired: p.desired, claims: DEFAULT_CLAIMS, state });
  return plan(
    { resources: [engineOf(p)], warnings: [] },
    { resources: observed.resources, foreign: [] },
  ).changes as Change<'engine'>[];
}

interface Proc {
  pid: number;
  argv: string[];
  env: NodeJS.ProcessEnv;
  device: Device;
  alive: boolean;
  exits: (() => void)[];
  onExit?: (code: number | null, signal: string | null) => void;
}

/** Programs that behave like wireguard-go: a UAPI socket in AWG_UAPI_DIR, the link's MTU set to 1420 on attach. */
class Programs {
  procs = new Map<number, Proc>();
  sockets = new Map<string, number>();
  links = new Map<string, LinkState>([['awg-vpn', { mtu: 1380, up: true }]]);
  /** what the next start does instead of listening */
  next: 'listen' | 'exit' | 'silent' = 'listen';
  private pid = 4000;

  kill(pid: number, signal = 'SIGKILL'): void {
    const p = this.procs.get(pid);
    if (!p || !p.alive) return;
    p.alive = false;
    void p.device.close();
    p.onExit?.(null, signal);
    for (const f of p.exits.splice(0)) f();
  }

  readonly deps: ExternalDeps = {
    spawn: (program, args, env) => {
      const pid = this.pid++;
      const link = args[1]!;
      const device = new Device({ tun: new MemoryTun(link), bind: net.bind('10.0.0.1') });
      const p: Proc = { pid, argv: [program, ...args], env, device, alive: true, exits: [] };
      this.procs.set(pid, p);
      const mode = this.next;
      this.next = 'listen';
      if (mode === 'exit') queueMicrotask(() => this.kill(pid, 'SIGABRT'));
      else if (mode === 'listen') {
        this.sockets.set(join(env.AWG_UAPI_DIR!, `${link}.sock`), pid);
        const l = this.links.get(link);
        if (l) l.mtu = 1420;
      }
      return {
        pid,
        onExit: (cb) => (p.onExit = cb),
        kill: () => this.kill(pid),
        unref: () => {},
      };
    },
    identity: (pid) => ({ bootId: 'boot', startTime: String(pid) }),
    alive: (rec) => this.procs.get(rec.pid)?.alive === true,
    terminate: async (rec) => this.kill(rec.pid, 'SIGTERM'),
    watchExit: async (rec, onExit) => {
      const p = this.procs.get(rec.pid);
      if (!p?.alive) {
        onExit();
        return () => {};
      }
      p.exits.push(onExit);
      return () => (p.exits = p.exits.filter((f) => f !== onExit));
    },
    uapiGet: async (path) => this.device(path).ipcGet(),
    uapiSet: async (path, text) => {
      await this.device(path).ipcSet(text);
      return 'errno=0\n\n';
    },
    linkState: async (link) => (this.links.has(link) ? { ...this.links.get(link)! } : undefined),
    setLink: async (link, s) => void Object.assign(this.links.get(link)!, s),
  };

  private device(path: string): Device {
    const p = this.procs.get(this.sockets.get(path) ?? -1);
    if (!p?.alive) throw Object.assign(new Error(`connect ENOENT ${path}`), { code: 'ENOENT' });
    return p.device;
  }

  live(): Proc[] {
    return [...this.procs.values()].filter((p) => p.alive);
  }
}

const EXTERNAL = '{ external: /opt/test/amneziawg-go, uapiDir: /run/test-awg }';

/** fake programs, the host over them, and the external tunnel's config prepared */
async function external(opts: Omit<ExternalHostOptions, 'deps'> = {}) {
  const progs = new Programs();
  const h = createExternalEngineHost({ ...opts, deps: progs.deps });
  const state = new MemoryStateStore();
  return { progs, h, state, p: await prepared(state, config(EXTERNAL)) };
}

describe('external engine host (fake programs)', () => {
  it('starts PROGRAM -f <link>, configures it over UAPI, puts the MTU back; then nothing to do', async () => {
    const { progs, h, state, p } = await external();
    const exec = new RecordingExec();
    const changes = await enginePlan(h.driver, p, state);
    expect(changes.map((c) => [c.id, c.action])).toEqual([['engine/vpn', 'create']]);
    expect(await h.driver.apply(changes[0]!, ctxOf(state, p, exec))).toBe('changed');

    const [proc] = progs.live();
    expect(proc!.argv).toEqual(['/opt/test/amneziawg-go', '-f', 'awg-vpn']);
    expect(proc!.env).toMatchObject({ WG_PROCESS_FOREGROUND: '1', AWG_UAPI_DIR: '/run/test-awg' });
    const got = parseGet(proc!.device.ipcGet());
    expect(got.device.private_key).toBe(hex(me.privateKey));
    expect(got.device.fwmark).toBe(String(0x0f000000));
    expect(got.peers.map((x) => [x.public_key, x.endpoint, x.allowed_ip])).toEqual([
      [hex(srv.publicKey), '10.0.0.2:51820', ['10.200.60.0/24']],
    ]);
    // wireguard-go's 1420 undone: the link driver sees no drift
    expect(progs.links.get('awg-vpn')).toEqual({ mtu: 1380, up: true });
    expect(exec.log).toEqual([
      '[spawn] /opt/test/amneziawg-go -f awg-vpn (UAPI /run/test-awg/awg-vpn.sock)',
      '[netlink] ip link set dev awg-vpn mtu 1380 (as before /opt/test/amneziawg-go attached)',
    ]);
    expect(state.get<EngineRecord>('engine-vpn')).toMatchObject({
      pid: proc!.pid,
      bootId: 'boot',
      startTime: String(proc!.pid),
      uapiPath: '/run/test-awg/awg-vpn.sock',
    });
    expect(await enginePlan(h.driver, p, state)).toEqual([]);
  });

  it('a killed engine is not observed: the plan starts it again; the daemon hears the exit', async () => {
    const exits: string[] = [];
    const { progs, h, state, p } = await external({
      supervise: (tunnel, why) => exits.push(`${tunnel}: ${why}`),
    });
    const ctx = ctxOf(state, p);
    await h.driver.apply((await enginePlan(h.driver, p, state))[0]!, ctx);
    const first = progs.live()[0]!.pid;
    expect(h.tunnels()).toEqual(['vpn']);

    progs.kill(first);
    expect(exits).toEqual([`vpn: the external engine (pid ${first}) exited`]);
    const again = await enginePlan(h.driver, p, state);
    expect(again.map((c) => [c.id, c.action])).toEqual([['engine/vpn', 'create']]);
    await h.driver.apply(again[0]!, ctx);
    expect(progs.live().map((x) => x.pid)).toEqual([first + 1]);
    expect(await enginePlan(h.driver, p, state)).toEqual([]);

    // a wrong one (another key set over its socket) is drift, repaired in place over UAPI
    await progs
      .live()[0]!
      .device.ipcSet(`set=1\npublic_key=${hex(intruder.publicKey)}\nallowed_ip=0.0.0.0/0\n\n`);
    const drift = await enginePlan(h.driver, p, state);
    expect(drift.map((c) => [c.action, c.fields])).toEqual([['update', ['config']]]);
    await h.driver.apply(drift[0]!, ctx);
    expect(progs.live().map((x) => x.pid)).toEqual([first + 1]);
    expect(await enginePlan(h.driver, p, state)).toEqual([]);

    // the daemon stops: its engines with it, records gone
    await h.closeAll();
    expect(progs.live()).toEqual([]);
    expect(state.get('engine-vpn')).toBeUndefined();
  });

  it('a config change is a UAPI delta on the running program; delete stops it and forgets it', async () => {
    const { progs, h, state, p } = await external();
    await h.driver.apply((await enginePlan(h.driver, p, state))[0]!, ctxOf(state, p));
    const p2 = await prepared(state, config(EXTERNAL, true));
    const up = await enginePlan(h.driver, p2, state);
    expect(up.map((c) => c.action)).toEqual(['update']);
    const exec = new RecordingExec();
    await h.driver.apply(up[0]!, ctxOf(state, p2, exec));
    expect(exec.log).toEqual(['[uapi] set /run/test-awg/awg-vpn.sock (config)']);
    expect(progs.live()).toHaveLength(1);
    expect(parseGet(progs.live()[0]!.device.ipcGet()).peers).toHaveLength(2);
    expect(await enginePlan(h.driver, p2, state)).toEqual([]);

    await h.driver.apply(removal(state), ctxOf(state, p2));
    expect(progs.live()).toEqual([]);
    expect(state.get('engine-vpn')).toBeUndefined();
  });

  it('a program that exits or never answers fails the start and is killed', async () => {
    const { progs, h, state, p } = await external({ readyTimeoutMs: 200 });
    const create = (await enginePlan(h.driver, p, state))[0]!;
    progs.next = 'exit';
    await expect(h.driver.apply(create, ctxOf(state, p))).rejects.toMatchObject({
      kind: 'driver',
      message: expect.stringMatching(/exited during start \(signal SIGABRT\)/),
    });
    progs.next = 'silent';
    await expect(h.driver.apply(create, ctxOf(state, p))).rejects.toThrow(
      /UAPI socket \/run\/test-awg\/awg-vpn\.sock did not answer within 200 ms/,
    );
    expect(progs.live()).toEqual([]);
    expect(state.get('engine-vpn')).toBeUndefined();
  });

  it('under dry-run nothing starts', async () => {
    const { progs, h, state, p } = await external();
    const exec = new RecordingExec({}, true);
    await h.driver.apply((await enginePlan(h.driver, p, state))[0]!, {
      ...ctxOf(state, p, exec),
      dryRun: true,
    });
    expect(progs.procs.size).toBe(0);
    expect(exec.log).toEqual([
      '[spawn] /opt/test/amneziawg-go -f awg-vpn (UAPI /run/test-awg/awg-vpn.sock)',
    ]);
  });
});

/** A fake kernel device: WG_CMD_SET_DEVICE's semantics on a WgDevice. */
class FakeKernel {
  devices = new Map<string, WgDevice>();
  sets: WgDeviceSet[] = [];
  getDevice = (ifname: string): WgDevice => {
    const d = this.devices.get(ifname);
    if (!d) throw Object.assign(new Error('ENODEV'), { errno: 19 });
    return { ...d, peers: d.peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })) };
  };
  setDevice = (s: WgDeviceSet): void => {
    this.sets.push(s);
    const d = this.devices.get(s.ifname);
    if (!d) throw Object.assign(new Error('ENODEV'), { errno: 19 });
    // an all-zero key removes it: the device then has none (WgDevice: absent)
    if (s.privateKey) {
      if (s.privateKey.equals(Buffer.alloc(32))) delete d.privateKey;
      else d.privateKey = s.privateKey;
    }
    if (s.listenPort !== undefined) d.listenPort = s.listenPort;
    if (s.fwmark !== undefined) d.fwmark = s.fwmark;
    if (s.replacePeers) d.peers = [];
    for (const p of s.peers) {
      let cur = d.peers.find((x) => x.publicKey.equals(p.publicKey));
      if (p.remove) {
        d.peers = d.peers.filter((x) => x !== cur);
        continue;
      }
      if (!cur) {
        cur = {
          publicKey: p.publicKey,
          persistentKeepalive: 0,
          lastHandshake: { sec: 0n, nsec: 0n },
          rxBytes: 0n,
          txBytes: 0n,
          allowedIps: [],
        };
        d.peers.push(cur);
      }
      if (p.endpoint) cur.endpoint = `${p.endpoint.address}:${p.endpoint.port}`;
      if (p.persistentKeepalive !== undefined) cur.persistentKeepalive = p.persistentKeepalive;
      if (p.replaceAllowedIps) cur.allowedIps = [];
      cur.allowedIps.push(...(p.allowedIps ?? []));
    }
  };
}

describe('kernel engine host (fake generic netlink)', () => {
  it('full set with REPLACE_PEERS, converged, drift repaired by a delta, delete empties the device', async () => {
    const k = new FakeKernel();
    k.devices.set('awg-vpn', {
      ifindex: 9,
      ifname: 'awg-vpn',
      listenPort: 0,
      fwmark: 0,
      peers: [],
    });
    const d = createKernelEngineDriver({ natives: k });
    const state = new MemoryStateStore();
    const p = await prepared(state, config('kernel'));
    const exec = new RecordingExec();
    const create = await enginePlan(d, p, state);
    expect(create.map((c) => c.action)).toEqual(['create']);
    await d.apply(create[0]!, ctxOf(state, p, exec));
    expect(exec.log).toEqual(['[genetlink] wg setconf awg-vpn (engine vpn in the kernel)']);
    expect(k.sets[0]).toMatchObject({
      ifname: 'awg-vpn',
      replacePeers: true,
      privateKey: Buffer.from(me.privateKey, 'base64'),
      fwmark: 0x0f000000,
      listenPort: 0,
      peers: [
        {
          publicKey: Buffer.from(srv.publicKey, 'base64'),
          replaceAllowedIps: true,
          presharedKey: Buffer.alloc(32),
          endpoint: { address: '10.0.0.2', port: 51820 },
          allowedIps: ['10.200.60.0/24'],
        },
      ],
    });
    expect(await enginePlan(d, p, state)).toEqual([]);

    k.devices.get('awg-vpn')!.peers.push({
      publicKey: Buffer.from(intruder.publicKey, 'base64'),
      persistentKeepalive: 0,
      lastHandshake: { sec: 0n, nsec: 0n },
      rxBytes: 0n,
      txBytes: 0n,
      allowedIps: ['0.0.0.0/0'],
    });
    const drift = await enginePlan(d, p, state);
    expect(drift.map((c) => c.action)).toEqual(['update']);
    await d.apply(drift[0]!, ctxOf(state, p));
    expect(k.sets.at(-1)!.replacePeers).toBe(false);
    expect(k.sets.at(-1)!.peers).toEqual([
      { publicKey: Buffer.from(intruder.publicKey, 'base64'), remove: true },
    ]);
    expect(await enginePlan(d, p, state)).toEqual([]);

    // the link vanished: not observed, so the plan configures it again once the link is back
    const dev = k.devices.get('awg-vpn')!;
    k.devices.delete('awg-vpn');
    expect((await enginePlan(d, p, state)).map((c) => c.action)).toEqual(['create']);
    k.devices.set('awg-vpn', dev);

    await d.apply(removal(state), ctxOf(state, p));
    expect(k.sets.at(-1)).toEqual({
      ifname: 'awg-vpn',
      privateKey: Buffer.alloc(32),
      listenPort: 0,
      fwmark: 0,
      replacePeers: true,
      peers: [],
    });
    expect(state.get('engine-vpn')).toBeUndefined();
  });
});

/** a host that records what it was asked and observes its own records */
function recordingHost(kind: string, calls: string[]): Driver<'engine'> {
  return {
    kind: 'engine',
    async observe(scope) {
      const resources: Resource<'engine'>[] = [];
      const rec = scope.state.get<EngineRecord>('engine-vpn');
      if (rec && rec.host === (kind as never))
        resources.push({ kind: 'engine', id: 'engine/vpn', spec: rec.spec, deps: [] });
      return { resources, foreign: [] };
    },
    async apply(c, ctx) {
      calls.push(`${kind} ${c.action}`);
      if (c.action === 'delete') ctx.state.delete('engine-vpn');
      else
        ctx.state.set('engine-vpn', {
          tunnel: 'vpn',
          link: 'awg-vpn',
          pid: 1,
          uapiPath: '',
          spec: c.after,
          host: kind,
        });
      return 'changed';
    },
  };
}

const recordingHosts = (calls: string[]) =>
  engineDriver({
    embedded: recordingHost('embedded', calls),
    kernel: recordingHost('kernel', calls),
    external: recordingHost('external', calls),
  });

describe('engineDriver: one driver over the three hosts', () => {
  it('a replace to another host stops the old engine through its host, then starts the new', async () => {
    const calls: string[] = [];
    const d = recordingHosts(calls);
    const state = new MemoryStateStore();
    const emb = engineOf(await prepared(state, config('embedded')));
    const ext = engineOf(await prepared(state, config(EXTERNAL)));
    const p = await prepared(state, config(EXTERNAL));
    const ctx = ctxOf(state, p);
    await d.apply(
      {
        kind: 'engine',
        id: emb.id,
        action: 'create',
        after: emb.spec,
        reason: 'x',
        cause: 'initial',
      },
      ctx,
    );
    const observed = await d.observe({ desired: p.desired, claims: DEFAULT_CLAIMS, state });
    const [change] = plan(
      { resources: [ext], warnings: [] },
      { resources: observed.resources, foreign: [] },
    ).changes as AnyChange[];
    expect([change!.action, change!.fields]).toEqual(['replace', ['engine']]);
    await d.apply(change as Change<'engine'>, ctx);
    expect(calls).toEqual(['embedded create', 'embedded delete', 'external create']);
    expect((state.get<EngineRecord>('engine-vpn')!.spec as WgEngineSpec).engine).toEqual({
      external: '/opt/test/amneziawg-go',
      uapiDir: '/run/test-awg',
    });
  });

  it('a record another host left (its engine dead, so not observed) is cleared by that host before a create', async () => {
    const calls: string[] = [];
    const d = recordingHosts(calls);
    const state = new MemoryStateStore();
    const ext = engineOf(await prepared(state, config(EXTERNAL)));
    const p = await prepared(state, config('embedded'));
    state.set('engine-vpn', {
      tunnel: 'vpn',
      link: 'awg-vpn',
      pid: 7,
      uapiPath: '',
      spec: ext.spec,
    });
    await d.apply(
      {
        kind: 'engine',
        id: 'engine/vpn',
        action: 'create',
        after: engineOf(p).spec,
        reason: 'x',
        cause: 'config',
      },
      ctxOf(state, p),
    );
    expect(calls).toEqual(['external delete', 'embedded create']);
  });
});
