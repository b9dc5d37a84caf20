/**
 * `awg import` keeps wg-quick's meaning of a split config: wg-quick routed the AllowedIPs
 * prefixes through the tunnel for every process and left the rest alone. The import says
 * `default: <tunnel>`; applied, an unmatched process's traffic to an AllowedIPs prefix goes
 * into the tunnel, and to any other destination it falls through (tunnel table `throw`) to
 * the main table and leaves directly. The peer never answers: what matters is which way
 * the kernel sends the packets.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { importWgQuick } from '../../src/config/import/index.js';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  ipRules,
  makeAwgEnv,
  nftTable,
  show,
  tcpReachable,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type VethPair,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

/** inside AllowedIPs, and outside; both served by the router namespace */
const INSIDE = '10.200.60.5';
const OUTSIDE = '10.200.70.5';

async function routeGet(
  ns: string,
  dst: string,
  mark?: number,
): Promise<{ dev?: string; gateway?: string }> {
  const args = [
    '-j',
    '-4',
    'route',
    'get',
    dst,
    ...(mark === undefined ? [] : ['mark', `0x${mark.toString(16)}`]),
  ];
  return (
    JSON.parse((await nsExec(ns, 'ip', args)).stdout) as { dev?: string; gateway?: string }[]
  )[0]!;
}

describe.skipIf(skip)('import: a split wg-quick config applies as wg-quick routed it', () => {
  let ns: string;
  let router: string;
  let veth: VethPair;
  let e: AwgEnv;
  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('imp-split');
    router = await createNetns('imp-rtr');
    veth = await vethPair(ns, router, {
      addrA: '10.200.9.1/24',
      addrB: ['10.200.9.2/24', `${INSIDE}/32`, `${OUTSIDE}/32`],
    });
    await run('ip', ['-n', ns, 'route', 'add', 'default', 'via', '10.200.9.2']);
    e = makeAwgEnv();
  });
  afterEach(async () => {
    if (ns) await destroyNetns(ns);
    if (router) await destroyNetns(router);
    cleanupAwgEnv(e);
  });

  it('AllowedIPs go through the tunnel for every process; other destinations stay direct', async () => {
    const me = wgKeyPair();
    const peer = wgKeyPair();
    const ini = [
      '[Interface]',
      `PrivateKey = ${me.privateKey}`,
      'Address = 10.200.50.2/32',
      '',
      '[Peer]',
      `PublicKey = ${peer.publicKey}`,
      'Endpoint = 10.200.9.2:51820',
      'AllowedIPs = 10.200.60.0/24',
      '',
    ].join('\n');
    const r = importWgQuick(ini, { file: 'office.conf' });
    expect(r.issues).toEqual([]);
    expect(r.config.default).toBe('office');

    // before: both destinations answer directly
    expect(await tcpReachable(ns, router, INSIDE, 18080)).toBe(true);
    expect(await tcpReachable(ns, router, OUTSIDE, 18081)).toBe(true);

    const cfg = writeConfig(e, 'office.yaml', r.yaml);
    const a = await awg(ns, e, ['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);

    // unmatched processes are marked for the tunnel (default route of the firewall policy)
    expect(await nftTable(ns, 'awg')).toMatch(/comment "default"/);
    const rule = (await ipRules(ns, 4)).find(
      (x) => x.fwmark !== undefined && x.priority >= 5200 && x.priority < 5300,
    );
    expect(rule, JSON.stringify(await ipRules(ns, 4))).toBeDefined();
    const mark = Number(rule!.fwmark);
    expect(await routeGet(ns, INSIDE, mark)).toMatchObject({ dev: 'awg-office' });
    expect(await routeGet(ns, OUTSIDE, mark)).toMatchObject({
      dev: veth.ifA,
      gateway: '10.200.9.2',
    });

    // and the traffic goes that way: the inside destination is now behind the (silent) peer
    expect(await tcpReachable(ns, router, OUTSIDE, 18082)).toBe(true);
    expect(await tcpReachable(ns, router, INSIDE, 18083)).toBe(false);
  });
});
