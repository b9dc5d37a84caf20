/**
 * The proto and the daemon's own definitions say the same: each list of names the proto has
 * an enum of is the domain's one constant, and (below) the status message has the fields of
 * the status's one definition. A name or field added on one side only fails here.
 */
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { DAEMON_STATES, WAKE_REASONS } from '../../../src/daemon/core.js';
import { StatusDocument } from '../../../src/daemon/status-document.js';
import type { State__Output } from '../../../src/daemon/wire/generated/awg/v1/State.js';
import type { WakeReason__Output } from '../../../src/daemon/wire/generated/awg/v1/WakeReason.js';
import type { EnumName } from '../../../src/daemon/wire/common.js';
import { LOADER_OPTIONS, PROTO_PATH } from '../../../src/daemon/wire/proto.js';

const pkg = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);

/** the value names of a proto enum, in order */
function enumNames(name: string): string[] {
  const def = pkg[`awg.v1.${name}`] as protoLoader.EnumTypeDefinition | undefined;
  if (!def) throw new Error(`no enum awg.v1.${name} in the proto`);
  return (def.type as { value: { name: string }[] }).value.map((v) => v.name);
}

const snake = (prefix: string, v: string) => `${prefix}_${v.toUpperCase().replace(/-/g, '_')}`;

describe('proto enums are the domain lists', () => {
  it('State: STATE_UNSPECIFIED, then DAEMON_STATES', () => {
    expect(enumNames('State')).toEqual([
      'STATE_UNSPECIFIED',
      ...DAEMON_STATES.map((s) => snake('STATE', s)),
    ]);
    expectTypeOf<State__Output>().toEqualTypeOf<
      'STATE_UNSPECIFIED' | EnumName<'STATE', (typeof DAEMON_STATES)[number]>
    >();
  });

  it('WakeReason: WAKE_REASON_UNSPECIFIED, then WAKE_REASONS', () => {
    expect(enumNames('WakeReason')).toEqual([
      'WAKE_REASON_UNSPECIFIED',
      ...WAKE_REASONS.map((w) => snake('WAKE_REASON', w)),
    ]);
    expectTypeOf<WakeReason__Output>().toEqualTypeOf<
      'WAKE_REASON_UNSPECIFIED' | EnumName<'WAKE_REASON', (typeof WAKE_REASONS)[number]>
    >();
  });

  it("the status document's daemon state is DAEMON_STATES", () => {
    const daemon = StatusDocument.options.find((o) => o.shape.source.value === 'daemon')!;
    expect(daemon.shape.state.options).toEqual([...DAEMON_STATES]);
  });
});
