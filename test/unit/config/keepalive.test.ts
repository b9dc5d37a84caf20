/**
 * A peer's persistent keepalive range (AmneziaWG 3.x): what the config accepts on which
 * tunnel type and engine, with located errors, and the canonical form the engine spec holds.
 */
import { describe, expect, it } from 'vitest';
import { keepaliveSpec } from '../../../src/config/keepalive.js';
import { loadConfigText } from '../../../src/config/load.js';
import { Config } from '../../../src/config/schema.js';
import { allocate } from '../../../src/model/alloc.js';
import { engineSpec } from '../../../src/model/engine.js';
import type { WgEngineSpec } from '../../../src/model/resources.js';

const PEER = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';

/** one tunnel whose peer has `keepalive` (line 11, col 30; 12 with an engine) */
const yaml = (type: string, keepalive: string, engine = '') => `version: 1
tunnels:
  work:
    type: ${type}
    privateKey: { file: work.key }
    addresses: [10.0.0.2/32]${engine ? `\n    engine: ${engine}` : ''}
    peers:
      - publicKey: ${PEER}
        endpoint: vpn.example.com:51820
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: ${keepalive}
rules:
  - match: { name: firefox }
    target: work
`;

const errorsOf = (text: string) =>
  loadConfigText(text, 'k.yaml')
    .issues.filter((i) => i.severity === 'error')
    .map((i) => `${i.line}:${i.col} ${i.path} ${i.message}`);

describe('persistentKeepalive ranges in the config', () => {
  it.each(["'25-35'", '{ min: 25, max: 35 }', '25', "'25'", '0'])('amneziawg accepts %s', (v) => {
    expect(errorsOf(yaml('amneziawg', v))).toEqual([]);
  });

  it('wireguard keeps plain numbers, and says why a range is refused, at its line', () => {
    expect(errorsOf(yaml('wireguard', '25'))).toEqual([]);
    expect(errorsOf(yaml('wireguard', '0'))).toEqual([]);
    for (const v of ["'25-35'", '{ min: 25, max: 35 }'])
      expect(errorsOf(yaml('wireguard', v))).toEqual([
        '11:30 tunnels.work.peers[0].persistentKeepalive must be a number of seconds (0-65535): a keepalive range "MIN-MAX" is AmneziaWG 3.x, and a wireguard tunnel has one interval; use type: amneziawg for a range',
      ]);
    // the number's own messages are as before
    expect(errorsOf(yaml('wireguard', '-1'))).toEqual([
      '11:30 tunnels.work.peers[0].persistentKeepalive Too small: expected number to be >=0',
    ]);
  });

  it('a reversed range, one from 0, one above 65535, and one on the kernel engine are located errors', () => {
    expect(errorsOf(yaml('amneziawg', "'35-25'"))).toEqual([
      '11:30 tunnels.work.peers[0].persistentKeepalive range 35-25 is reversed',
    ]);
    expect(errorsOf(yaml('amneziawg', "'0-30'"))).toEqual([
      '11:30 tunnels.work.peers[0].persistentKeepalive range 0-30 starts at 0; use 0 alone to turn keepalives off, or start at 1',
    ]);
    expect(errorsOf(yaml('amneziawg', "'25-70000'"))).toHaveLength(1);
    expect(errorsOf(yaml('amneziawg', "'25-35'", 'kernel'))).toEqual([
      "12:30 tunnels.work.peers[0].persistentKeepalive Linux's WireGuard module keeps one keepalive interval, but 25-35 is a range (AmneziaWG 3.x): use engine: embedded or {external: …amneziawg-go 3.x}, or one number",
    ]);
    // one interval is what the module holds
    expect(errorsOf(yaml('amneziawg', "'25-25'", 'kernel'))).toEqual([]);
  });

  it('the engine spec holds a number, or "MIN-MAX" for a range of more than one value', () => {
    expect([undefined, 0, 25, '25', '25-25', { min: 7, max: 7 }].map(keepaliveSpec)).toEqual([
      0, 0, 25, 25, 25, 7,
    ]);
    expect(keepaliveSpec('25-35')).toBe('25-35');
    expect(keepaliveSpec({ min: 25, max: 35 })).toBe('25-35');
    const c = Config.parse({
      version: 1,
      tunnels: {
        work: {
          type: 'amneziawg',
          privateKey: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=',
          addresses: ['10.0.0.2/32'],
          peers: [
            {
              publicKey: PEER,
              allowedIPs: ['0.0.0.0/0'],
              persistentKeepalive: { min: 20, max: 30 },
            },
          ],
        },
      },
    });
    const spec = engineSpec('work', c.tunnels.work!, allocate(c)) as WgEngineSpec;
    expect(spec.config.peers[0]!.persistentKeepalive).toBe('20-30');
  });
});
