import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryNetwork } from '../../../../src/dataplane/conn/memory.fake.js';
import { Device } from '../../../../src/dataplane/device/device.js';
import { listenUapi } from '../../../../src/dataplane/ipc/server.js';
import { MemoryTun } from '../../../../src/dataplane/tun/memory.fake.js';
import type { EngineRecord } from '../../../../src/resources/engine/process-host.js';
import {
  detachedEngineStatus,
  detachedStatusFromGet,
} from '../../../../src/resources/engine/detached-status.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

const rec = {
  tunnel: 'work',
  link: 'awg-work',
  spec: { tunnel: 'work', type: 'wireguard' as const, link: 'awg-work', config: {} },
};
const PRIV = 'a8'.repeat(32);
const PUB = 'e3'.repeat(32);
const PSK = '11'.repeat(32);

describe('tunnel health from a UAPI get answer', () => {
  it('reports handshake age, counters and endpoint; drops keys', () => {
    const text = `private_key=${PRIV}\nlisten_port=51820\npublic_key=${PUB}\npreshared_key=${PSK}\nendpoint=10.200.0.2:51820\nlast_handshake_time_sec=1000\nlast_handshake_time_nsec=500000000\nrx_bytes=1234\ntx_bytes=99\nallowed_ip=10.0.0.0/8\nerrno=0\n\n`;
    const s = detachedStatusFromGet(rec, text, 1_010_600);
    expect(s).toMatchObject({
      name: 'work',
      up: true,
      lastHandshakeAgeSec: 10,
      rxBytes: 1234,
      txBytes: 99,
    });
    expect(s.peers[0]).toEqual({
      publicKey: Buffer.from(PUB, 'hex').toString('base64'),
      endpoint: '10.200.0.2:51820',
      lastHandshakeAgeSec: 10,
      rxBytes: 1234,
      txBytes: 99,
    });
    const json = JSON.stringify(s);
    expect(json).not.toContain(PRIV);
    expect(json).not.toContain(PSK);
    expect(json).not.toContain(Buffer.from(PRIV, 'hex').toString('base64'));
  });
  it('a peer that never shook hands has no age; an engine that does not answer is down', () => {
    const s = detachedStatusFromGet(
      rec,
      `public_key=${PUB}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=0\nerrno=0\n\n`,
      5000,
    );
    expect(s.lastHandshakeAgeSec).toBeUndefined();
    expect(s.peers[0]!.lastHandshakeAgeSec).toBeUndefined();
    expect(detachedStatusFromGet(rec, undefined, 0)).toMatchObject({ up: false, peers: [] });
  });
});

describe('status of the detached engines in the state store', () => {
  it('asks each engine on its socket: a live WireGuard engine is up, a proxy engine that does not answer is down', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-detached-'));
    const dev = new Device({ tun: new MemoryTun('t'), bind: new MemoryNetwork().bind('10.0.0.1') });
    await dev.ipcSet(`set=1\nprivate_key=${PRIV}\npublic_key=${PUB}\nallowed_ip=10.0.0.0/8\n\n`);
    const uapi = await listenUapi(dev, join(dir, 'awg-work.sock'));
    try {
      const state = new MemoryStateStore();
      const wg: EngineRecord = {
        tunnel: 'work',
        link: 'awg-work',
        pid: 1,
        uapiPath: uapi.path,
        spec: {
          tunnel: 'work',
          type: 'wireguard',
          link: 'awg-work',
          config: { privateKey: 'x', listenPort: 0, fwmark: 0, peers: [] },
        },
      };
      const px: EngineRecord = {
        tunnel: 'px',
        link: 'px',
        pid: 1,
        uapiPath: join(dir, 'proxy-px.sock'),
        spec: {
          tunnel: 'px',
          type: 'socks5',
          config: {
            server: 's',
            port: 1080,
            redirectPort: 1,
            redirectPortDirect: 2,
            fwmark: 0,
            dns: [],
            auth: null,
            udp: false,
          },
        },
      };
      state.set('engine-work', wg);
      state.set('engine-px', px);
      state.set('other', { ignored: true });
      const got = await detachedEngineStatus(state, 0);
      expect(got.map((s) => [s.name, s.type, s.up])).toEqual([
        ['px', 'socks5', false],
        ['work', 'wireguard', true],
      ]);
      expect(got[1]!.peers.map((p) => p.publicKey)).toEqual([
        Buffer.from(PUB, 'hex').toString('base64'),
      ]);
      expect(JSON.stringify(got)).not.toContain(PRIV);
    } finally {
      await uapi.close();
      await dev.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
