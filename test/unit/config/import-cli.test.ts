/** `awg import` end to end through the CLI: what it prints, writes, and that `awg validate` accepts it. */
import { copyFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { tempDir } from '../../helpers/tmp.js';

const VALID = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/import/valid');

async function awg(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', ...args], io);
  return { code, out, err };
}

function staged(fixture: string, as = fixture): { dir: string; conf: string } {
  const dir = tempDir('awg-import-');
  const conf = join(dir, as);
  copyFileSync(join(VALID, fixture), conf);
  return { dir, conf };
}

describe('awg import (CLI)', () => {
  it('imports the two-peer file: warnings with file:line:col on stderr, output validates', async () => {
    const { dir, conf } = staged('twopeers.conf');
    const out = join(dir, 'twopeers.yaml');
    const r = await awg('import', conf, '-o', out, '--key-file');
    expect(r.code).toBe(0);
    const lines = r.err.trim().split('\n');
    expect(lines).toEqual([
      `${conf}:7:1: warning: tunnels.twopeers.peers[0].allowedIPs: this [Peer] keeps no allowed IPs: later peers claim all of them, so, as under wg-quick, no traffic goes to it`,
      `${conf}:10:14: warning: tunnels.twopeers.peers[0].allowedIPs: AllowedIPs 0.0.0.0/0 on line 10 is also claimed on line 16 by a later [Peer] (line 13); WireGuard gives a prefix to the last peer that claims it, so only that peer gets it`,
      `${conf}:10:25: warning: tunnels.twopeers.peers[0].allowedIPs: AllowedIPs ::/0 on line 10 is also claimed on line 16 by a later [Peer] (line 13); WireGuard gives a prefix to the last peer that claims it, so only that peer gets it`,
      `wrote ${out} (tunnel twopeers) and twopeers.key (mode 600)`,
    ]);
    // the key file holds the key and one newline, as `wg genkey > file` writes it
    expect(readFileSync(join(dir, 'twopeers.key'), 'utf8')).toBe(
      '0Bkh14K6Xb5k6d7gRcQ9R3hMCY44TlVXJ8g1fw/iz1Y=\n',
    );
    const v = await awg('validate', '-f', out);
    expect(v.err).toBe('');
    expect(v.code).toBe(0);
  });

  it('derives the tunnel name from a long file name and says which; --name wins', async () => {
    const { dir, conf } = staged('my-home-office-vpn.conf');
    const r = await awg('import', conf);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `${conf}: warning: tunnels.my-home-off: the file name "my-home-office-vpn" is not a valid tunnel name (at most 11 characters, as the link awg-<name> has 15 at most); imported as tunnel "my-home-off", choose another with --name\n`,
    );
    expect(Object.keys(YAML.parse(r.out).tunnels)).toEqual(['my-home-off']);

    const out = join(dir, 'home.yaml');
    const named = await awg('import', conf, '--name', 'home', '-o', out);
    expect(named.code).toBe(0);
    expect(named.err).toBe(`wrote ${out} (tunnel home)\n`);
    expect(YAML.parse(readFileSync(out, 'utf8'))).toMatchObject({
      default: 'home',
      tunnels: { home: {} },
    });
    expect((await awg('validate', '-f', out)).code).toBe(0);

    const bad = await awg('import', conf, '--name', 'My Home');
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('tunnel name "My Home" (from --name) is invalid');
    expect(bad.out).toBe('');
  });

  it('refuses a file name that gives no tunnel name, and says to use --name', async () => {
    const { conf } = staged('wg0.conf', 'block.conf');
    const r = await awg('import', conf);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'the file name "block" is not a valid tunnel name ("block" is reserved) and gives none; name the tunnel with --name',
    );
    expect((await awg('import', conf, '--name', 'blk')).code).toBe(0);
  });

  it('imports a split config as default: <tunnel> that validates', async () => {
    const { dir, conf } = staged('office.conf');
    const out = join(dir, 'office.yaml');
    expect((await awg('import', conf, '-o', out)).code).toBe(0);
    expect(YAML.parse(readFileSync(out, 'utf8'))).toMatchObject({
      default: 'office',
      dns: { system: 'default-tunnel' },
    });
    expect((await awg('validate', '-f', out)).code).toBe(0);
  });
});
