import { describe, expect, it } from 'vitest';
import { tunnelStatusFromGet } from '../../../../src/resources/engine/health.js';

const rec = { tunnel: 'work', link: 'awg-work', spec: { tunnel: 'work', type: 'wireguard' as const, link: 'awg-work', config: {} } };
const PRIV = 'a8'.repeat(32);
const PUB = 'e3'.repeat(32);
const PSK = '11'.repeat(32);

describe('tunnel health from a UAPI get answer', () => {
  it('reports handshake age, counters and endpoint; drops keys', () => {
    const text = `private_key=${PRIV}\nlisten_port=51820\npublic_key=${PUB}\npreshared_key=${PSK}\nendpoint=10.200.0.2:51820\nlast_handshake_time_sec=1000\nlast_handshake_time_nsec=500000000\nrx_bytes=1234\ntx_bytes=99\nallowed_ip=10.0.0.0/8\nerrno=0\n\n`;
    const s = tunnelStatusFromGet(rec, text, 1_010_600);
    expect(s).toMatchObject({ name: 'work', up: true, lastHandshakeAgeSec: 10, rxBytes: 1234, txBytes: 99 });
    expect(s.peers[0]).toEqual({ publicKey: Buffer.from(PUB, 'hex').toString('base64'), endpoint: '10.200.0.2:51820', lastHandshakeAgeSec: 10, rxBytes: 1234, txBytes: 99 });
    const json = JSON.stringify(s);
    expect(json).not.toContain(PRIV);
    expect(json).not.toContain(PSK);
    expect(json).not.toContain(Buffer.from(PRIV, 'hex').toString('base64'));
  });
  it('a peer that never shook hands has no age; an engine that does not answer is down', () => {
    const s = tunnelStatusFromGet(rec, `public_key=${PUB}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=0\nerrno=0\n\n`, 5000);
    expect(s.lastHandshakeAgeSec).toBeUndefined();
    expect(s.peers[0]!.lastHandshakeAgeSec).toBeUndefined();
    expect(tunnelStatusFromGet(rec, undefined, 0)).toMatchObject({ up: false, peers: [] });
  });
});
