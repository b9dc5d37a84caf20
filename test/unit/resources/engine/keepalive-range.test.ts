/**
 * A persistent keepalive range (AmneziaWG 3.x) on the way to the engines: the UAPI text for
 * the embedded engine and external ones (amneziawg-go 3.x) carries `MIN-MAX`, the kernel
 * path refuses it (never picks one value), and what a device reports reads back as the range.
 */
import { describe, expect, it } from 'vitest';
import { AwgError } from '../../../../src/errors.js';
import type { WgEngineSpec } from '../../../../src/model/resources.js';
import type { ApplyContext } from '../../../../src/resources/driver.js';
import { detachedStatusFromGet } from '../../../../src/resources/engine/detached-status.js';
import { kernelSet } from '../../../../src/resources/engine/kernel-host.js';
import { liveKeepalive } from '../../../../src/resources/engine/live-spec.js';
import {
  deltaSetText,
  fullSet,
  fullSetText,
  type EngineSecrets,
} from '../../../../src/resources/engine/uapi-config.js';

const PEER = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';
const PEER_HEX = Buffer.from(PEER, 'base64').toString('hex');
const secrets: EngineSecrets = {
  privateKey: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=',
  presharedKeys: new Map(),
};
const spec = (keepalive: number | string): WgEngineSpec => ({
  tunnel: 'work',
  type: 'amneziawg',
  link: 'awg-work',
  config: {
    privateKey: 'fp',
    listenPort: 0,
    fwmark: 0x100,
    peers: [
      {
        publicKey: PEER,
        presharedKey: null,
        endpoint: null,
        allowedIPs: ['0.0.0.0/0'],
        persistentKeepalive: keepalive,
      },
    ],
    obfuscation: {},
  },
});

describe('keepalive range to the engines', () => {
  it('the UAPI writer writes persistent_keepalive_interval=MIN-MAX, and a number as before', () => {
    expect(fullSetText(spec('20-30'), secrets)).toContain(
      `public_key=${PEER_HEX}\npreshared_key=${'0'.repeat(64)}\npersistent_keepalive_interval=20-30\n`,
    );
    expect(fullSetText(spec(25), secrets)).toContain('persistent_keepalive_interval=25\n');
    // a change of the range alone is a peer update that keeps the session
    const delta = deltaSetText(spec(25), spec('20-30'), secrets);
    expect(delta).toContain('persistent_keepalive_interval=20-30\n');
    expect(delta).not.toContain('replace_peers');
    expect(deltaSetText(spec('20-30'), spec('20-30'), secrets)).not.toContain('public_key');
  });

  it('the kernel path refuses a range with an unsupported error, and takes a number', async () => {
    const ctx = {} as ApplyContext;
    const err = await kernelSet('awg-work', fullSet(spec('20-30'), secrets), 0x100, ctx).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AwgError);
    expect((err as AwgError).kind).toBe('unsupported');
    expect((err as AwgError).message).toMatch(
      /Linux's WireGuard module keeps one keepalive interval, but peer .* has the range 20-30/,
    );
    const ok = await kernelSet('awg-work', fullSet(spec(25), secrets), 0x100, ctx);
    expect(ok.peers[0]).toMatchObject({ persistentKeepalive: 25 });
  });

  it('a device report reads back as the model holds it', () => {
    expect(['20-30', '25', '25-25', 0, undefined, 'x'].map(liveKeepalive)).toEqual([
      '20-30',
      25,
      25,
      0,
      0,
      0,
    ]);
    const rec = { tunnel: 'work', link: 'awg-work', spec: { type: 'amneziawg' as const } };
    const get = (ka: string) =>
      detachedStatusFromGet(
        rec,
        `public_key=${PEER_HEX}\npersistent_keepalive_interval=${ka}\nrx_bytes=0\ntx_bytes=0\nerrno=0\n\n`,
        0,
      ).peers[0];
    expect(get('20-30')).toMatchObject({ persistentKeepalive: '20-30' });
    expect(get('0')).not.toHaveProperty('persistentKeepalive');
  });
});
