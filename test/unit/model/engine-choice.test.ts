/**
 * `engine:` (embedded, kernel, {external}) from the config to the plan: the schema and its
 * located errors, the engine and link specs the model builds, and what the planner makes of a
 * change of engine (a replace; a kernel engine's link of another kind takes its dependents
 * along, which are made again after it). Configs without `engine:` plan as before (the
 * goldens in test/fixtures/golden hold that).
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { Config } from '../../../src/config/schema.js';
import { obfuscationKeysSet } from '../../../src/config/semantic.js';
import { formatIssue } from '../../../src/errors.js';
import type { AnyResource, ObservedState, WgEngineSpec } from '../../../src/model/resources.js';
import { plan } from '../../../src/reconciler/plan.js';
import { linuxDesired } from '../../helpers/desired.js';

const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

function yaml(engine?: string): string {
  return `version: 1
tunnels:
  work:
    type: wireguard
${engine ? `    engine: ${engine}\n` : ''}    privateKey: { file: work.key }
    addresses: [10.9.0.2/32]
    mtu: 1380
    peers:
      - publicKey: ${PEER}
        endpoint: 192.0.2.1:51820
        allowedIPs: [10.1.0.0/16]
`;
}

const desiredOf = (engine?: string) => {
  const r = loadConfigText(yaml(engine), 'c.yaml');
  if (!r.config) throw new Error(r.issues.map(formatIssue).join('\n'));
  return linuxDesired(r.config);
};
const engineOf = (rs: AnyResource[]) => rs.find((r) => r.kind === 'engine')!.spec as WgEngineSpec;
const linkOf = (rs: AnyResource[]) => rs.find((r) => r.kind === 'link')!;
/** what the drivers report once `resources` are in place (observe carries no deps but the address's) */
const observedAs = (rs: AnyResource[]): ObservedState => ({
  resources: JSON.parse(JSON.stringify(rs)) as AnyResource[],
  foreign: [],
});

describe('engine: in the config', () => {
  it('accepts embedded, kernel and {external, uapiDir}; absent stays absent', () => {
    const base = Config.parse({
      version: 1,
      tunnels: {
        a: {
          type: 'wireguard',
          privateKey: 'k',
          addresses: ['10.0.0.2/32'],
          peers: [{ publicKey: PEER }],
        },
      },
    });
    expect('engine' in base.tunnels.a!).toBe(false);
    for (const engine of ['embedded', 'kernel', { external: '/usr/bin/wireguard-go' }] as const) {
      const c = Config.parse({
        version: 1,
        tunnels: { a: { ...base.tunnels.a, engine } },
      });
      expect((c.tunnels.a as { engine?: unknown }).engine).toEqual(engine);
    }
  });

  it('obfuscationKeysSet: values of plain WireGuard do not count', () => {
    expect(
      obfuscationKeysSet({
        jc: 0,
        s1: 0,
        h1: 1,
        h2: '2',
        h3: { min: 3, max: 3 },
        i1: '',
        randomTrailers: false,
        rekeyTimeout: 0,
      }),
    ).toEqual([]);
    expect(
      obfuscationKeysSet({
        jc: 4,
        h1: 5,
        h2: '2-9',
        i2: '<r 2>',
        disableCookies: true,
        contentPaddingAddition: '0-8',
        headerProtectionKey: { file: 'k' },
      }),
    ).toEqual([
      'jc',
      'h1',
      'h2',
      'i2',
      'disableCookies',
      'contentPaddingAddition',
      'headerProtectionKey',
    ]);
  });

  it('amneziawg with plain obfuscation may use the kernel engine', () => {
    const text =
      yaml('kernel').replace('type: wireguard', 'type: amneziawg') +
      '    obfuscation: { h1: 1, jc: 0 }\n';
    const r = loadConfigText(text, 'c.yaml');
    expect(r.issues.map(formatIssue)).toEqual([]);
  });
});

describe('engine: in the model', () => {
  it('no engine field for the embedded engine, written or not: specs as before', () => {
    for (const e of [undefined, 'embedded']) {
      const d = desiredOf(e).resources;
      expect('engine' in engineOf(d)).toBe(false);
      expect(linkOf(d).spec).toEqual({ name: 'awg-work', kind: 'tun', mtu: 1380, up: true });
    }
  });

  it('kernel: a wireguard link, the engine marked kernel', () => {
    const d = desiredOf('kernel').resources;
    expect(engineOf(d).engine).toBe('kernel');
    expect(linkOf(d).spec).toEqual({ name: 'awg-work', kind: 'wireguard', mtu: 1380, up: true });
  });

  it('external: the program and its UAPI directory (amneziawg-go keeps its own by default)', () => {
    expect(engineOf(desiredOf('{ external: /usr/bin/wireguard-go }').resources).engine).toEqual({
      external: '/usr/bin/wireguard-go',
      uapiDir: '/var/run/wireguard',
    });
    expect(
      engineOf(desiredOf('{ external: /opt/awg/amneziawg-go-v3.1 }').resources).engine,
    ).toEqual({ external: '/opt/awg/amneziawg-go-v3.1', uapiDir: '/var/run/amneziawg' });
    expect(
      engineOf(desiredOf('{ external: /opt/x/engine, uapiDir: /run/x }').resources).engine,
    ).toEqual({ external: '/opt/x/engine', uapiDir: '/run/x' });
    expect(linkOf(desiredOf('{ external: /opt/x/engine }').resources).spec.kind).toBe('tun');
  });
});

describe('engine: in the plan', () => {
  it('embedded → external is one replace of the engine and nothing else; then converged', () => {
    const before = desiredOf().resources;
    const after = desiredOf('{ external: /usr/bin/amneziawg-go }');
    const p = plan(after, observedAs(before));
    expect(p.changes.map((c) => [c.id, c.action, c.fields])).toEqual([
      ['engine/work', 'replace', ['engine']],
    ]);
    expect(plan(after, observedAs(after.resources)).changes).toEqual([]);
  });

  it('external → another program, or another UAPI directory, is a replace', () => {
    const before = desiredOf('{ external: /usr/bin/amneziawg-go }').resources;
    for (const e of [
      '{ external: /usr/bin/wireguard-go }',
      '{ external: /usr/bin/amneziawg-go, uapiDir: /run/a }',
    ])
      expect(plan(desiredOf(e), observedAs(before)).changes.map((c) => [c.id, c.action])).toEqual([
        ['engine/work', 'replace'],
      ]);
  });

  it('embedded → kernel: the link of another kind is replaced and what hangs on it is made again', () => {
    const before = desiredOf().resources;
    const p = plan(desiredOf('kernel'), observedAs(before));
    const rows = p.changes.map((c) => [c.id, c.action, c.reason]);
    expect(rows[0]).toEqual(['link/awg-work', 'replace', 'kind differ (cannot change in place)']);
    const ids = p.changes.map((c) => c.id);
    // every object on the link, in dependency order after it
    for (const r of before.filter((x) => x.deps.includes('link/awg-work'))) {
      expect(ids).toContain(r.id);
      expect(ids.indexOf(r.id)).toBeGreaterThan(0);
    }
    expect(p.changes.find((c) => c.id === 'engine/work')).toMatchObject({
      action: 'replace',
      fields: ['engine'],
    });
    expect(p.changes.find((c) => c.id.startsWith('address/'))).toMatchObject({
      action: 'replace',
      fields: [],
      reason: 'made again: link/awg-work is replaced',
    });
    // nothing that does not hang on the link moves
    const linkless = before.filter(
      (x) => x.kind !== 'link' && !x.deps.includes('link/awg-work') && x.kind !== 'engine',
    );
    for (const r of linkless) expect(ids).not.toContain(r.id);
  });
});
