import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { checkSecrets, publicKeyOf } from '../../../src/config/secrets.js';
import { tempDir } from '../../helpers/tmp.js';
import { wgKeyPair } from '../../helpers/awg.js';

function pair() {
  const k = wgKeyPair();
  return { priv: k.privateKey, pub: k.publicKey };
}

describe('a peer that is the tunnel itself', () => {
  it('publicKeyOf matches node:crypto', () => {
    const k = pair();
    expect(publicKeyOf(k.priv)).toBe(k.pub);
  });
  it('is a located error once the private key is resolved', () => {
    const me = pair();
    const dir = tempDir('awg-selfpeer-');
    const file = join(dir, 'c.yaml');
    writeFileSync(join(dir, 'k'), me.priv + '\n', { mode: 0o600 });
    const text = `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: {file: k}\n    addresses: [10.1.0.2/32]\n    peers:\n      - publicKey: ${me.pub}\n        allowedIPs: [10.1.0.0/24]\n`;
    writeFileSync(file, text);
    const r = loadConfigText(text, file);
    const s = checkSecrets(r.config!, { configFile: file, env: {} }, r.positions);
    expect(s.issues.filter((i) => i.severity === 'error')).toEqual([
      expect.objectContaining({
        line: 8,
        col: 20,
        path: 'tunnels.vpn.peers[0].publicKey',
        message: expect.stringContaining('own public key'),
      }),
    ]);
  });
});
