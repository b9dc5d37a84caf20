/**
 * A live engine's extra peers and allowed IPs are drift (real `awg engine` process on a real
 * TUN in a namespace, one-shot `awg apply`): `wg set`-style UAPI writes on its socket add a
 * peer that takes 0.0.0.0/0 and an allowed IP to our peer; `awg diff` names engine/vpn as an
 * update caused by drift with the extra peer in `before`; `awg apply` sends one UAPI delta
 * that removes both, and the next diff is empty. Before the fix the engine driver kept only
 * the configured peers in its observation, so diff said "no changes" and the intruder stayed.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseGet, uapiGet, uapiSet } from '../../src/resources/engine/uapi-client.js';
import {
  awg,
  cleanupAwgEnv,
  engineGroup,
  ensureDist,
  expectedEngineNice,
  makeAwgEnv,
  OWN_AUTOGROUP,
  show,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

interface PlanChange {
  kind: string;
  id: string;
  action: string;
  cause: string;
  before?: { config: { peers: { publicKey: string; allowedIPs: string[] }[] } };
}

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
const b64 = (h: unknown) => Buffer.from(String(h), 'hex').toString('base64');

describe.skipIf(skip)('e2e: extra peers and allowed IPs of a live engine are drift', () => {
  let ns: string;
  let peerNs: string;
  let e: AwgEnv;
  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('e2e-edr');
    peerNs = await createNetns('e2e-edrp');
    await vethPair(ns, peerNs, { addrA: '10.200.9.1/24', addrB: '10.200.9.2/24' });
    e = makeAwgEnv();
  });
  afterEach(async () => {
    if (ns) await awg(ns, e, ['down']).catch(() => undefined);
    if (ns) await destroyNetns(ns);
    if (peerNs) await destroyNetns(peerNs);
    cleanupAwgEnv(e);
  });

  it('diff reports an extra peer (0.0.0.0/0) and an extra allowed IP; apply removes them', async () => {
    const me = wgKeyPair();
    const peer = wgKeyPair();
    const intruder = wgKeyPair();
    const cfg = writeConfig(
      e,
      'wg.yaml',
      `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.2/32]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.60.0/24]
`,
    );
    const a = await awg(ns, e, ['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);
    // the engine's autogroup weight (boost.ts applyEngineWeight; AWG_ENGINE_NICE=0: untouched)
    const g = await engineGroup(ns);
    expect(g.leader).toBe(true);
    if (OWN_AUTOGROUP !== null) expect(g.nice).toBe(expectedEngineNice());
    const sock = join(e.env.AWG_UAPI_DIR!, 'awg-vpn.sock');
    await uapiSet(
      sock,
      `set=1\npublic_key=${hex(intruder.publicKey)}\nallowed_ip=0.0.0.0/0\npublic_key=${hex(peer.publicKey)}\nallowed_ip=10.200.99.0/24\n\n`,
    );
    expect(parseGet(await uapiGet(sock)).peers).toHaveLength(2);

    const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
    expect(d.code, show(d)).toBe(2);
    const changes = d.json<{ changes: PlanChange[] }>().changes;
    expect(changes.map((c) => [c.id, c.action, c.cause])).toEqual([
      ['engine/vpn', 'update', 'drift'],
    ]);
    expect(changes[0]!.before!.config.peers.map((p) => [p.publicKey, p.allowedIPs])).toEqual([
      [peer.publicKey, ['10.200.60.0/24', '10.200.99.0/24']],
      [intruder.publicKey, ['0.0.0.0/0']],
    ]);

    const r = await awg(ns, e, ['apply', '-f', cfg]);
    expect(r.code, show(r)).toBe(0);
    expect(r.mutations).toEqual([
      expect.stringMatching(/^\[#\] \[uapi\] set .*awg-vpn\.sock \(config\)$/),
    ]);
    const live = parseGet(await uapiGet(sock));
    expect(live.peers.map((p) => [b64(p.public_key), p.allowed_ip])).toEqual([
      [peer.publicKey, ['10.200.60.0/24']],
    ]);
    const after = await awg(ns, e, ['diff', '-f', cfg]);
    expect(after.code, show(after)).toBe(0);
  });
});
