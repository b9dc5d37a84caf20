/**
 * Peers and allowed IPs an engine holds beyond the config are drift: `wg set` on the UAPI
 * socket adds a peer that takes 0.0.0.0/0 or an allowed IP to one of ours; observation
 * reports them (before, both drivers kept only the configured peers and never looked at
 * allowed IPs, so the plan was empty), the plan has an engine update, and its UAPI delta
 * removes them. In-process driver over in-memory TUN/bind, with its real UAPI socket; the
 * detached driver against a real engine is test/netns/e2e-engine-drift.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryNetwork } from '../../../../src/dataplane/conn/memory.fake.js';
import { MemoryTun } from '../../../../src/dataplane/tun/memory.fake.js';
import type { Change } from '../../../../src/model/change.js';
import type { Resource, WgEngineSpec } from '../../../../src/model/resources.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import { prepare, type Prepared } from '../../../../src/pipeline/prepare.js';
import { plan } from '../../../../src/reconciler/plan.js';
import type { ApplyContext } from '../../../../src/resources/driver.js';
import { createInprocEngineHost } from '../../../../src/resources/engine/inproc.js';
import { liveWgSpec } from '../../../../src/resources/engine/live-spec.js';
import { parseGet, uapiGet, uapiSet } from '../../../../src/resources/engine/uapi-client.js';
import { silentReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore, type StateStore } from '../../../../src/util/state.js';
import { fingerprintKeyOf } from '../../../../src/util/host-key.js';
import { wgKeyPair } from '../../../helpers/awg.js';
import { RecordingExec } from '../../../helpers/exec.js';

const me = wgKeyPair();
const srv = wgKeyPair();
const intruder = wgKeyPair();
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

const base: WgEngineSpec = {
  tunnel: 'vpn',
  type: 'wireguard',
  link: 'awg-vpn',
  config: {
    privateKey: 'fp',
    listenPort: 0,
    fwmark: 1,
    peers: [
      {
        publicKey: srv.publicKey,
        presharedKey: null,
        endpoint: '10.0.0.2:51820',
        allowedIPs: ['10.200.60.0/24', '10.200.61.0/24'],
        persistentKeepalive: 0,
      },
    ],
  },
};

describe('liveWgSpec', () => {
  const live = (peers: { publicKey: string; allowedIPs: string[] }[]) =>
    liveWgSpec(base, {
      privateKey: 'fp',
      fwmark: 1,
      peers: peers.map((p) => ({ ...p, endpoint: '192.0.2.9:1', persistentKeepalive: 25 })),
    });

  it('the configured peers with the same allowed IPs (any order): the spec itself, endpoint as configured', () => {
    expect(
      live([{ publicKey: srv.publicKey, allowedIPs: ['10.200.61.0/24', '10.200.60.0/24'] }]),
    ).toEqual(base);
  });

  it('an extra peer is reported with its allowed IPs', () => {
    const s = live([
      { publicKey: srv.publicKey, allowedIPs: ['10.200.60.0/24', '10.200.61.0/24'] },
      { publicKey: intruder.publicKey, allowedIPs: ['0.0.0.0/0'] },
    ]);
    expect(s.config.peers).toEqual([
      base.config.peers[0],
      {
        publicKey: intruder.publicKey,
        presharedKey: null,
        endpoint: '192.0.2.9:1',
        allowedIPs: ['0.0.0.0/0'],
        persistentKeepalive: 25,
      },
    ]);
  });

  it('an extra allowed IP (canonicalised) and a missing one are reported', () => {
    const s = live([
      { publicKey: srv.publicKey, allowedIPs: ['10.200.60.0/24', '0.0.0.0/0', 'fd00:0::/64'] },
    ]);
    expect(s.config.peers[0]!.allowedIPs).toEqual(['10.200.60.0/24', '0.0.0.0/0', 'fd00::/64']);
  });

  it('a missing peer is left out', () => {
    expect(live([]).config.peers).toEqual([]);
  });
});

describe('in-process engine: extra peers and allowed IPs are drift, repaired by apply', () => {
  let dir: string;
  let net: MemoryNetwork;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-drift-'));
    net = new MemoryNetwork();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function desired(state: StateStore): Promise<{ p: Prepared; engine: Resource<'engine'> }> {
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: "${me.privateKey}"\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${srv.publicKey}"\n        endpoint: 10.0.0.2:51820\n        allowedIPs: [10.200.60.0/24]\n`,
    );
    // the fingerprints of the plan and of the observed engine: the same host key
    const r = await prepare(file, {
      facts: { cgroupNftPrefix: '' },
      fingerprintKey: () => fingerprintKeyOf(state),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return {
      p: r.prepared,
      engine: r.prepared.desired.resources.find(
        (x): x is Resource<'engine'> => x.kind === 'engine',
      )!,
    };
  }

  it('wg set adds a peer with 0.0.0.0/0 and an allowed IP to ours: observed, planned as an update (drift), removed', async () => {
    const uapiDir = join(dir, 'uapi');
    const h = createInprocEngineHost({
      env: { AWG_UAPI_DIR: uapiDir },
      io: { openTun: (link) => new MemoryTun(link), bind: () => net.bind('10.0.0.1') },
    });
    try {
      const state = new MemoryStateStore();
      const { p, engine } = await desired(state);
      const ctx: ApplyContext = {
        exec: new RecordingExec(),
        reporter: silentReporter,
        state,
        dryRun: false,
        claims: DEFAULT_CLAIMS,
        secrets: p.secrets,
      };
      const scope = { desired: p.desired, claims: DEFAULT_CLAIMS, state: ctx.state };
      await h.driver.apply(
        {
          kind: 'engine',
          id: engine.id,
          action: 'create',
          after: engine.spec,
          reason: 'new',
          cause: 'initial',
        } as Change<'engine'>,
        ctx,
      );
      const sock = join(uapiDir, 'awg-vpn.sock');
      await uapiSet(
        sock,
        `set=1\npublic_key=${hex(intruder.publicKey)}\nallowed_ip=0.0.0.0/0\npublic_key=${hex(srv.publicKey)}\nallowed_ip=10.200.99.0/24\n\n`,
      );

      const observed = (await h.driver.observe(scope)).resources;
      const drift = plan(
        p.desired,
        { resources: observed, foreign: [] },
        { lastApplied: p.desired.resources },
      ).changes.filter((c) => c.kind === 'engine');
      expect(drift).toHaveLength(1);
      expect(drift[0]).toMatchObject({ action: 'update', cause: 'drift' });
      const before = drift[0]!.before as WgEngineSpec;
      expect(before.config.peers.map((x) => [x.publicKey, x.allowedIPs])).toEqual([
        [srv.publicKey, ['10.200.60.0/24', '10.200.99.0/24']],
        [intruder.publicKey, ['0.0.0.0/0']],
      ]);

      expect(await h.driver.apply(drift[0] as Change<'engine'>, ctx)).toBe('changed');
      const got = parseGet(await uapiGet(sock));
      expect(
        got.peers.map((x) => [
          Buffer.from(String(x.public_key), 'hex').toString('base64'),
          x.allowed_ip,
        ]),
      ).toEqual([[srv.publicKey, ['10.200.60.0/24']]]);
      expect(
        plan(p.desired, {
          resources: (await h.driver.observe(scope)).resources,
          foreign: [],
        }).changes.filter((c) => c.kind === 'engine'),
      ).toEqual([]);
    } finally {
      await h.closeAll();
    }
  });
});
