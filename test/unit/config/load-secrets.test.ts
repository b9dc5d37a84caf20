/** checkSecrets: resolution from file/env/inline, located problems, values never leaked. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { checkSecrets, readSecret, secretRefs } from '../../../src/config/secrets.js';
import { formatIssue } from '../../../src/errors.js';

const K1 = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';
const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PSK = '6G13WZnnoz6QJgrRE3yQvg6U3foGvv4YcPYAWzDRT+s=';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-secrets-'));
  writeFileSync(join(dir, 'good.key'), PRIV + '\n\n');
  chmodSync(join(dir, 'good.key'), 0o600);
  writeFileSync(join(dir, 'open.key'), PRIV);
  chmodSync(join(dir, 'open.key'), 0o644);
  writeFileSync(join(dir, 'bad.key'), 'not a key\n');
  chmodSync(join(dir, 'bad.key'), 0o600);
  writeFileSync(join(dir, 'psk'), PSK);
  chmodSync(join(dir, 'psk'), 0o600);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cfg = (priv: string, extra = '') => `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: ${priv}
    addresses: [10.0.0.2/32]
    peers:
      - publicKey: ${K1}
        allowedIPs: [0.0.0.0/0]
${extra}`;

function run(text: string, env: NodeJS.ProcessEnv = {}) {
  const file = join(dir, 'config.yaml');
  const r = loadConfigText(text, file);
  expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return { ...checkSecrets(r.config!, { configFile: file, env }, r.positions), file };
}

describe('checkSecrets', () => {
  it('reads a relative file next to the config, trims whitespace, no issue at mode 600', () => {
    const s = run(cfg('{ file: good.key }'));
    expect(s.issues).toEqual([]);
    expect(s.values.get('tunnels.work.privateKey')).toBe(PRIV);
  });

  it('absolute paths, env and preshared keys', () => {
    const s = run(
      cfg(`{ file: ${join(dir, 'good.key')} }`).replace(
        '        allowedIPs',
        `        presharedKey: { env: WORK_PSK }\n        allowedIPs`,
      ),
      { WORK_PSK: ` ${PSK} ` },
    );
    expect(s.issues).toEqual([]);
    expect(s.values.get('tunnels.work.peers[0].presharedKey')).toBe(PSK);
  });

  it('missing file: located error at the secret, no value', () => {
    const s = run(cfg('{ file: nope.key }'));
    expect(s.issues).toEqual([
      {
        file: s.file,
        line: 5,
        col: 17,
        path: 'tunnels.work.privateKey',
        severity: 'error',
        message: 'secret file not found (file nope.key)',
      },
    ]);
    expect(s.values.size).toBe(0);
  });

  it('unset or empty env variable is an error', () => {
    for (const env of [{}, { WORK_KEY: '' }]) {
      const s = run(cfg('{ env: WORK_KEY }'), env);
      expect(s.issues).toHaveLength(1);
      expect(s.issues[0]).toMatchObject({
        severity: 'error',
        path: 'tunnels.work.privateKey',
        line: 5,
      });
      expect(s.issues[0]!.message).toMatch(/WORK_KEY is not set/);
    }
  });

  it('a value that is not a key is an error that does not print the value', () => {
    const s = run(cfg('{ file: bad.key }'));
    expect(s.issues.map(formatIssue)).toEqual([
      `${s.file}:5:17: tunnels.work.privateKey: secret (file bad.key) is not a base64-encoded 32-byte key`,
    ]);
    expect(JSON.stringify(s.issues)).not.toContain('not a key');
  });

  it('inline secrets and group-readable files are warnings', () => {
    const inline = run(cfg(PRIV));
    expect(inline.issues).toEqual([
      expect.objectContaining({
        severity: 'warning',
        message: expect.stringMatching(/inline secret/),
      }),
    ]);
    expect(JSON.stringify(inline.issues)).not.toContain(PRIV);
    const open = run(cfg('{ file: open.key }'));
    expect(open.issues).toEqual([
      expect.objectContaining({ severity: 'warning', message: expect.stringMatching(/chmod 600/) }),
    ]);
    expect(open.values.get('tunnels.work.privateKey')).toBe(PRIV);
  });

  it('proxy passwords are secrets but not keys', () => {
    const text = `version: 1
tunnels:
  p:
    type: http
    server: proxy
    auth: { username: u, password: { env: PROXY_PW } }
`;
    const s = run(text, { PROXY_PW: 'hunter2' });
    expect(s.issues).toEqual([]);
    expect(s.values.get('tunnels.p.auth.password')).toBe('hunter2');
  });

  it('secretRefs lists every secret with its path', () => {
    const r = loadConfigText(
      cfg('{ file: a }').replace(
        '        allowedIPs',
        '        presharedKey: { file: b }\n        allowedIPs',
      ),
      'x.yaml',
    );
    expect(secretRefs(r.config!).map((x) => [x.path.join('.'), x.isKey])).toEqual([
      ['tunnels.work.privateKey', true],
      ['tunnels.work.peers.0.presharedKey', true],
    ]);
  });

  it('readSecret throws for an unset variable', () => {
    expect(() => readSecret({ env: 'NOPE' }, { configFile: '/x', env: {} })).toThrow(/NOPE/);
    expect(readSecret('inline', { configFile: '/x', env: {} })).toBe('inline');
  });
});
