/** The `fleet:` section (schema-fleet.ts, semantic-fleet.ts): defaults, shape and located errors. */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { Config, verifyOf } from '../../../src/config/schema.js';
import { tcpTarget } from '../../../src/config/schema-fleet.js';
import { formatIssue } from '../../../src/errors.js';

const KEY = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';
const base = `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: { file: a.key }
    addresses: [10.0.0.2/32]
    peers: [{ publicKey: ${KEY}, endpoint: 192.0.2.1:51820, allowedIPs: [10.0.0.0/24] }]
`;
const load = (fleet: string) => loadConfigText(base + fleet, 'c.yaml');
const errors = (fleet: string) =>
  load(fleet)
    .issues.filter((i) => i.severity === 'error')
    .map(formatIssue);

describe('fleet.verify', () => {
  it('defaults: within 60s, every tunnel up before, the git remote', () => {
    expect(verifyOf(Config.parse({ version: 1 }).fleet)).toEqual({
      within: '60s',
      tunnels: 'all',
      reach: ['git'],
    });
    expect(load('fleet: { verify: {} }\n').config?.fleet).toEqual({
      verify: { within: '60s', tunnels: 'all', reach: ['git'] },
    });
    expect(load('fleet: {}\n').config?.fleet?.verify.within).toBe('60s');
  });

  it('takes names, tcp targets and a bound', () => {
    const r = load(
      'fleet:\n  verify:\n    within: 2m\n    tunnels: [vpn]\n    reach: [git, "tcp:10.0.0.1:9418", "tcp:[fd00::1]:22", "tcp:git.example.org:443"]\n',
    );
    expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(r.config?.fleet?.verify).toEqual({
      within: '2m',
      tunnels: ['vpn'],
      reach: ['git', 'tcp:10.0.0.1:9418', 'tcp:[fd00::1]:22', 'tcp:git.example.org:443'],
    });
  });

  it('shape errors are located', () => {
    expect(
      errors(
        'fleet:\n  verify:\n    within: soon\n    tunnels: some\n    reach: [git, "tcp:host", "udp:1.2.3.4:53"]\n    extra: 1\n',
      ),
    ).toEqual([
      'c.yaml:10:13: fleet.verify.within: a duration like 30m, 6h or 1d12h (units ms, s, m, h, d)',
      'c.yaml:11:14: fleet.verify.tunnels: must be "all" or a list of tunnel names',
      'c.yaml:12:18: fleet.verify.reach[1]: must be "git" or "tcp:host:port" (IPv6: tcp:[addr]:port)',
      'c.yaml:12:30: fleet.verify.reach[2]: must be "git" or "tcp:host:port" (IPv6: tcp:[addr]:port)',
      'c.yaml:13:5: fleet.verify.extra: unknown field "extra"',
    ]);
  });

  it('semantic errors are located: unknown tunnels, a bound out of 1s..1h', () => {
    expect(errors('fleet:\n  verify:\n    within: 500ms\n    tunnels: [vpn, office]\n')).toEqual([
      'c.yaml:10:13: fleet.verify.within: within 500ms must be between 1s and 1h',
      'c.yaml:11:20: fleet.verify.tunnels[1]: unknown tunnel "office" (known: vpn)',
    ]);
    expect(errors('fleet: { verify: { within: 2h } }\n')).toEqual([
      'c.yaml:8:28: fleet.verify.within: within 2h must be between 1s and 1h',
    ]);
  });

  it('a name or target given twice is a warning', () => {
    const w = load('fleet: { verify: { tunnels: [vpn, vpn], reach: [git, git] } }\n')
      .issues.filter((i) => i.severity === 'warning')
      .map(formatIssue);
    expect(w).toEqual([
      'c.yaml:8:35: warning: fleet.verify.tunnels[1]: tunnel "vpn" is named twice',
      'c.yaml:8:54: warning: fleet.verify.reach[1]: "git" is named twice',
    ]);
  });

  it('tcpTarget', () => {
    expect(tcpTarget('tcp:10.0.0.1:80')).toEqual({ host: '10.0.0.1', port: 80 });
    expect(tcpTarget('tcp:10.0.0.1:0')).toBeUndefined();
    expect(tcpTarget('10.0.0.1:80')).toBeUndefined();
  });
});
