import { describe, expect, it } from 'vitest';
import {
  assumeUnreadSecretsUnchanged,
  makeObservationRecord,
  parseObservation,
} from '../../../src/pipeline/observation.js';
import type { AnyResource, DesiredState, ObservedState } from '../../../src/model/resources.js';

const engine = (privateKey: string, psk?: string) =>
  ({
    kind: 'engine',
    id: 'engine/work',
    deps: [],
    spec: {
      tunnel: 'work',
      privateKey,
      peers: [{ publicKey: 'P', ...(psk ? { presharedKey: psk } : {}) }],
    },
  }) as unknown as AnyResource;

describe('recorded observations', () => {
  it('a record round-trips; a bare observed state is still read; anything else is refused by name', () => {
    const observed: ObservedState = { resources: [engine('hmac:aaaaaaaaaaaa')], foreign: [] };
    const rec = makeObservationRecord(observed, {
      lastApplied: [engine('hmac:aaaaaaaaaaaa')],
      facts: { dnsManager: 'static' },
      host: 'h1',
    });
    const back = parseObservation(JSON.stringify(rec), 'r.json');
    expect(back).toEqual({
      observed,
      lastApplied: rec.lastApplied,
      facts: { dnsManager: 'static' },
      host: 'h1',
    });
    expect(parseObservation(JSON.stringify(observed), 'o.json')).toEqual({ observed });
    expect(() => parseObservation('{', 'x.json')).toThrow(/x\.json: not JSON/);
    expect(() => parseObservation('{"kind":"awg-observation","version":2}', 'x.json')).toThrow(
      /version 2 is not supported/,
    );
    expect(() =>
      parseObservation(
        '{"kind":"awg-observation","version":1,"observed":{"resources":[1],"foreign":[]}}',
        'x.json',
      ),
    ).toThrow(/"observed" is not an observed state/);
    expect(() => parseObservation('[]', 'x.json')).toThrow(/neither an awg observation record/);
  });

  it('unread secrets take the observed fingerprint at the same place; read ones and new objects are left', () => {
    const desired: DesiredState = {
      resources: [
        engine('unresolved:age secrets/k.age', 'unresolved:file psk'),
        { ...engine('unresolved:env K'), id: 'engine/new' } as AnyResource,
      ],
      warnings: [],
    };
    const observed: ObservedState = {
      resources: [engine('hmac:111111111111', 'hmac:222222222222')],
      foreign: [],
    };
    expect(assumeUnreadSecretsUnchanged(desired, observed)).toBe(2);
    expect(desired.resources[0]!.spec).toEqual(
      engine('hmac:111111111111', 'hmac:222222222222').spec,
    );
    expect((desired.resources[1]!.spec as unknown as { privateKey: string }).privateKey).toBe(
      'unresolved:env K',
    );
  });
});
