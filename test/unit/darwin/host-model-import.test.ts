/**
 * `awg import` of a split wg-quick config on the macOS host model (the counterpart of
 * test/netns/import-split.test.ts): the import says `default: <tunnel>`, so its AllowedIPs
 * are the default tunnel's prefixes, routed through its utun for every process (unscoped, no
 * 0/1 split: they do not cover the default), and any other destination keeps the system's
 * default route. Verified on the model only (docs/platform-macos.md).
 */
import { describe, expect, it } from 'vitest';
import { importWgQuick } from '../../../src/config/import/index.js';
import { wgKeyPair } from '../../helpers/awg.js';
import { rigsCleanedAfterEach } from '../../helpers/macos-host/scenario.js';

describe('macOS host model: an imported split wg-quick config', () => {
  const rig = rigsCleanedAfterEach();

  it('AllowedIPs go through the utun for every process; other destinations stay on en0; down restores', async () => {
    const me = wgKeyPair();
    const peer = wgKeyPair();
    const ini = [
      '[Interface]',
      `PrivateKey = ${me.privateKey}`,
      'Address = 10.200.50.2/32',
      '',
      '[Peer]',
      `PublicKey = ${peer.publicKey}`,
      'Endpoint = 198.51.100.20:51820',
      'AllowedIPs = 10.200.60.0/24, 172.16.0.0/12',
      '',
    ].join('\n');
    const imported = importWgQuick(ini, { file: 'office.conf' });
    expect(imported.issues).toEqual([]);
    expect(imported.config.default).toBe('office');

    const r = rig(imported.yaml);
    const prior = r.host.snapshot();
    expect(r.host.lookup('10.200.60.5')?.netif).toBe('en0'); // before: the default route
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    const utun = [...r.host.interfaces.values()].find((i) =>
      i.inet.some((a) => a.address === '10.200.50.2'),
    )!.name;
    expect(r.host.routes.filter((k) => k.netif === utun).map((k) => [k.dst, k.flags])).toEqual([
      ['10.200.60.0/24', 'USc'],
      ['172.16.0.0/12', 'USc'],
    ]);
    expect(r.host.lookup('10.200.60.5')?.netif).toBe(utun);
    expect(r.host.lookup('172.20.1.1')?.netif).toBe(utun);
    expect(r.host.lookup('10.200.70.5')).toMatchObject({ netif: 'en0', gateway: '192.168.1.1' });
    // nothing covers the default, so the endpoint needs no bypass
    expect(r.host.routes.filter((k) => k.dst === '198.51.100.20/32')).toEqual([]);
    expect(r.host.lookup('198.51.100.20')?.netif).toBe('en0');
    expect(await r.diff()).toEqual([]);

    const d = await r.down();
    expect(d.errors).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
  });
});
