/**
 * AmneziaWG 3.x parameters end to end: YAML → desired engine spec → the in-process engine
 * driver's UAPI set → a Device over in-memory TUN/bind, against a peer Device configured with
 * hand-written UAPI text (the amneziawg-tools key names, docs/dataplane.md#uapi-the-engines-configuration-socket). Same parameters
 * interoperate; a different header protection key does not. The key itself never appears
 * in the plan document, the observed (status) spec, the exec log or the state store.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import { prepare, type Prepared } from '../../../../src/pipeline/prepare.js';
import { fingerprint } from '../../../../src/config/fingerprint.js';
import { fingerprintKeyOf } from '../../../../src/util/host-key.js';
import { MemoryNetwork } from '../../../../src/dataplane/conn/memory.fake.js';
import { Device } from '../../../../src/dataplane/device/device.js';
import { MemoryTun } from '../../../../src/dataplane/tun/memory.fake.js';
import type { Change } from '../../../../src/model/change.js';
import { toPlanDocument } from '../../../../src/model/plan-document.js';
import {
  isProxyEngine,
  type Resource,
  type WgEngineSpec,
} from '../../../../src/model/resources.js';
import { plan } from '../../../../src/reconciler/plan.js';
import type { ApplyContext } from '../../../../src/resources/driver.js';
import { detachedStatusFromGet } from '../../../../src/resources/engine/detached-status.js';
import {
  createInprocEngineHost,
  type EngineChange,
} from '../../../../src/resources/engine/inproc.js';
import { secretsFor } from '../../../../src/resources/engine/process-host.js';
import { deltaSetText, fullSetText } from '../../../../src/resources/engine/uapi-config.js';
import { silentReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { wgKeyPair } from '../../../helpers/awg.js';
import { RecordingExec } from '../../../helpers/exec.js';
import { eventually } from '../../../helpers/eventually.js';

const me = wgKeyPair();
const srv = wgKeyPair();
const HPK = 'aR2rLMA777iQkXu6YxsKyEu6XEBlY62l//BD3+uDpWU=';
const OTHER_HPK = '69grLMA777iQkXu6YxsKyEu6XEBlY62l//BD3+uDpWU=';
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

const OBF = `
    obfuscation:
      jc: 2
      jmin: 30
      jmax: 60
      s1: 16
      s2: 24
      s3: 12
      s4: 14
      h1: 100000-100999
      h2: 200000-200999
      h3: '300000'
      h4: { min: 400000, max: 400999 }
      headerProtectionKey: { env: AWG_HPK }
      contentPaddingAddition: 8-40
      rekeyAfterTime: 100-110
      rekeyTimeout: 3-4
      rejectAfterTime: 170-180
      keepaliveTimeout: 9-11
      maxHandshakeAttempts: 10-12
      randomTrailers: true
      disableCookies: true
`;

/** What an awg(8) `setconf` of the same interface section would send (docs/dataplane.md#uapi-the-engines-configuration-socket). */
function serverAwg(hpk: string): string {
  return [
    'jc=3',
    'jmin=20',
    'jmax=40',
    's1=16',
    's2=24',
    's3=12',
    's4=14',
    'h1=100000-100999',
    'h2=200000-200999',
    'h3=300000',
    'h4=400000-400999',
    `header_protection_key=${hex(hpk)}`,
    'content_padding_addition=8-40',
    'random_trailers=1',
  ].join('\n');
}

function ipv4(src: string, dst: string, payload: string): Uint8Array {
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

describe('AmneziaWG 3.x from YAML to the engine', () => {
  let dir: string;
  let net: MemoryNetwork;
  let server: Device;
  let serverTun: MemoryTun;
  let tuns: MemoryTun[];
  /** the host's state (and so its fingerprint key) for both the plan and the engine host */
  let state: MemoryStateStore;
  const fp = (v: string) => fingerprint(v, fingerprintKeyOf(state));

  async function desired(
    obf = OBF,
    hpk = HPK,
  ): Promise<{ p: Prepared; engine: Resource<'engine'> & { spec: WgEngineSpec } }> {
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  vpn:\n    type: amneziawg\n    privateKey: "${me.privateKey}"\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${srv.publicKey}"\n        endpoint: 10.0.0.2:51820\n        allowedIPs: [10.200.50.0/24]\n${obf}`,
    );
    const r = await prepare(file, {
      facts: { cgroupNftPrefix: '' },
      env: { AWG_HPK: hpk },
      fingerprintKey: () => fingerprintKeyOf(state),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const engine = r.prepared.desired.resources.find(
      (x): x is Resource<'engine'> => x.kind === 'engine',
    )!;
    const spec = engine.spec;
    if (isProxyEngine(spec)) throw new Error(`want an amneziawg engine, got ${spec.type}`);
    return { p: r.prepared, engine: { ...engine, spec } };
  }

  const ctx = (p: Prepared, exec = new RecordingExec()): ApplyContext => ({
    exec,
    reporter: silentReporter,
    state,
    dryRun: false,
    claims: DEFAULT_CLAIMS,
    secrets: p.secrets,
  });

  async function startServer(hpk: string): Promise<void> {
    serverTun = new MemoryTun('srv0');
    server = new Device({ tun: serverTun, bind: net.bind('10.0.0.2') });
    await server.ipcSet(
      `set=1\nprivate_key=${hex(srv.privateKey)}\nlisten_port=51820\n${serverAwg(hpk)}\npublic_key=${hex(me.publicKey)}\nallowed_ip=10.200.50.1/32\n\n`,
    );
    await server.up();
  }

  function host() {
    const changes: EngineChange[] = [];
    const h = createInprocEngineHost({
      uapi: false,
      io: {
        openTun: (link) => {
          const t = new MemoryTun(link);
          tuns.push(t);
          return t;
        },
        bind: () => net.bind('10.0.0.1'),
      },
    });
    h.onChange((c) => changes.push(c));
    return { h, changes };
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-awg3-'));
    net = new MemoryNetwork();
    tuns = [];
    state = new MemoryStateStore();
  });
  afterEach(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the UAPI set text carries every 3.x key, the header protection key from the secret', async () => {
    const { p, engine } = await desired();
    const text = fullSetText(engine.spec, secretsFor('vpn', engine.spec, p.secrets));
    expect(text).toContain(`header_protection_key=${hex(HPK)}\n`);
    for (const l of [
      'content_padding_addition=8-40',
      'rekey_after_time=100-110',
      'rekey_timeout=3-4',
      'reject_after_time=170-180',
      'keepalive_timeout=9-11',
      'max_handshake_attempts=10-12',
      'random_trailers=1',
      'disable_cookies=1',
      'h3=300000',
      'h4=400000-400999',
    ])
      expect(text.split('\n')).toContain(l);
    // the spec (what plans and status show) holds the fingerprint only
    expect(engine.spec.config.obfuscation?.headerProtectionKey).toBe(fp(HPK));
  });

  it('a device configured from YAML talks to a device with the same parameters', async () => {
    await startServer(HPK);
    const { h, changes } = host();
    const { p, engine } = await desired();
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
        ctx(p),
      ),
    ).toBe('changed');
    tuns[0]!.inject(ipv4('10.200.50.1', '10.200.50.2', 'through awg3'));
    await flush();
    expect(serverTun.written.map((b) => Buffer.from(b).subarray(20).toString())).toEqual([
      'through awg3',
    ]);
    await eventually(() => expect(changes.filter((x) => x.type === 'handshake')).toHaveLength(1)); // emitted after the packet
    serverTun.inject(ipv4('10.200.50.2', '10.200.50.1', 'and back'));
    await flush();
    expect(tuns[0]!.written.map((b) => Buffer.from(b).subarray(20).toString())).toEqual([
      'and back',
    ]);

    // on the wire: the initiation's type field (after the 16-byte S1 prefix) is not in H1 in
    // clear (header protection), and random trailers make it longer than S1 + 148
    const fromMe = net.sent.filter((d) => d.from.address === '10.0.0.1');
    const init = fromMe.find(
      (d) => d.data.length >= 16 + 148 && d.data.length !== 30 && d.data.length !== 60,
    )!;
    expect(init).toBeDefined();
    const t = Buffer.from(init.data).readUInt32LE(16);
    expect(t >= 100000 && t <= 100999).toBe(false);
    const lines = server.ipcGet().split('\n');
    expect(lines).toContain(`header_protection_key=${hex(HPK)}`);
  });

  it('a different header protection key on the peer: no handshake, nothing delivered', async () => {
    await startServer(OTHER_HPK);
    const { h, changes } = host();
    const { p, engine } = await desired();
    await h.driver.apply(
      {
        kind: 'engine',
        id: engine.id,
        action: 'create',
        after: engine.spec,
        reason: 'new',
        cause: 'initial',
      } as Change<'engine'>,
      ctx(p),
    );
    tuns[0]!.inject(ipv4('10.200.50.1', '10.200.50.2', 'blocked'));
    await flush();
    expect(changes.filter((x) => x.type === 'handshake')).toEqual([]);
    expect(serverTun.written).toEqual([]);
    expect(net.sent.filter((d) => d.from.address === '10.0.0.2')).toEqual([]);
  });

  it('the key reaches neither the plan JSON, the observed spec (status), the exec log nor the state', async () => {
    await startServer(HPK);
    const { h } = host();
    const { p, engine } = await desired();
    const exec = new RecordingExec();
    const c = ctx(p, exec);
    const pl = plan(p.desired, { resources: [], foreign: [] });
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
    const observed = await h.driver.observe({
      desired: p.desired,
      claims: DEFAULT_CLAIMS,
      state: c.state,
    });
    expect(observed.resources).toHaveLength(1);
    const texts = {
      plan: JSON.stringify(toPlanDocument(pl, p.file)),
      desired: JSON.stringify(p.desired),
      observed: JSON.stringify(observed),
      exec: JSON.stringify(exec),
      state: JSON.stringify(c.state),
      stats: JSON.stringify(h.stats()),
      // a detached engine's status comes from its UAPI get answer, which does hold the key
      health: JSON.stringify(
        detachedStatusFromGet(
          { tunnel: 'vpn', link: 'awg-vpn', spec: engine.spec },
          server.ipcGet(),
          Date.now(),
        ),
      ),
    };
    expect(server.ipcGet()).toContain(hex(HPK));
    const needles = [
      HPK,
      hex(HPK),
      HPK.slice(0, 20),
      hex(HPK).slice(0, 24),
      Buffer.from(HPK, 'base64').toString('base64url'),
    ];
    for (const [where, s] of Object.entries(texts))
      for (const n of needles) expect(s.includes(n), `${where} contains the key`).toBe(false);
    expect(texts.plan).toContain(fp(HPK));
    expect(texts.observed).toContain(fp(HPK));
    // and the observed engine equals the desired one: applying again is a no-op
    expect(
      plan({ resources: [engine], warnings: [] }, { resources: observed.resources, foreign: [] })
        .changes,
    ).toEqual([]);
  });

  it('a changed key plans an engine update whose delta sends the new key; removing 3.x keys resets them', async () => {
    const a = await desired();
    const b = await desired(OBF, OTHER_HPK);
    const changes = plan(b.p.desired, { resources: [a.engine], foreign: [] }).changes.filter(
      (x) => x.kind === 'engine',
    );
    expect(changes.map((x) => x.action)).toEqual(['update']);
    const delta = deltaSetText(
      a.engine.spec,
      b.engine.spec,
      secretsFor('vpn', b.engine.spec, b.p.secrets),
    );
    expect(delta).toContain(`header_protection_key=${hex(OTHER_HPK)}\n`);

    const plain = await desired('    obfuscation: { jc: 2, jmin: 30, jmax: 60 }\n');
    const off = deltaSetText(
      a.engine.spec,
      plain.engine.spec,
      secretsFor('vpn', plain.engine.spec, plain.p.secrets),
    ).split('\n');
    for (const l of [
      `header_protection_key=${'0'.repeat(64)}`,
      'content_padding_addition=0',
      'rekey_after_time=0',
      'rekey_timeout=0',
      'reject_after_time=0',
      'keepalive_timeout=0',
      'max_handshake_attempts=0',
      'random_trailers=0',
      'disable_cookies=0',
      's1=0',
      'h1=1',
      'h4=4',
    ])
      expect(off).toContain(l);
    expect(off).toContain('jc=2');
    // the reset text is accepted by the engine: a device at the 3.x state takes it and ends at WireGuard defaults
    const dev = new Device({ tun: new MemoryTun('t'), bind: net.bind('10.0.0.9') });
    await dev.ipcSet(fullSetText(a.engine.spec, secretsFor('vpn', a.engine.spec, a.p.secrets)));
    await dev.ipcSet(off.join('\n'));
    const got = dev.ipcGet().split('\n');
    expect(got.some((l) => l.startsWith('header_protection_key='))).toBe(false);
    expect(got).toContain('random_trailers=0');
    expect(got.some((l) => l.startsWith('rekey_after_time='))).toBe(false);
    await dev.close();
  });

  it('a header protection key that is not resolved stops the engine start with a clear error', async () => {
    const { engine } = await desired();
    expect(() =>
      secretsFor('vpn', engine.spec, new Map([['tunnels.vpn.privateKey', me.privateKey]])),
    ).toThrow(/header protection key was not resolved/);
  });
});
