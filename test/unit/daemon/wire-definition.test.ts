/**
 * The proto and the daemon's own definitions say the same: each list of names the proto has
 * an enum of is the domain's one constant, and (below) the status message has the fields of
 * the status's one definition, the TopDocument message those of the monitor's document. A name
 * or field added on one side only fails here.
 */
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type * as z from 'zod';
import type { DetachedEngineStatus } from '../../../src/resources/engine/detached-status.js';
import type { StatusResponse, TunnelStatus } from '../../../src/daemon/core.js';
import { DAEMON_STATES, TUNNEL_HEALTH, WAKE_REASONS } from '../../../src/daemon/names.js';
import { DaemonStatus, StatusDocument } from '../../../src/daemon/status-document.js';
import { TopDocument } from '../../../src/procs/top/document.js';
import type { HealthState } from '../../../src/daemon/tunnel-health.js';
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

// ---- the status message ---------------------------------------------------------------------

interface ProtoField {
  name: string;
  label: string;
  type: string;
  typeName: string;
}
interface ProtoMessage {
  field: ProtoField[];
  oneofDecl: { name: string }[];
}

function message(typeName: string): ProtoMessage {
  const name = typeName.replace(/^\./, '');
  const def = pkg[name.startsWith('awg.v1.') ? name : `awg.v1.${name}`] as
    protoLoader.MessageTypeDefinition<object, object> | undefined;
  if (!def) throw new Error(`no message ${typeName} in the proto`);
  return def.type as ProtoMessage;
}

/**
 * Fields the status's definition has as optional that the proto carries without presence:
 * the empty value reads as absent there.
 */
const EMPTY_MEANS_ABSENT = new Set(['StatusResponse.tunnels[].health']);

const INTEGER = new Set(['TYPE_UINT32', 'TYPE_UINT64', 'TYPE_INT32', 'TYPE_INT64']);

/**
 * How the zod object `schema` and the proto message `msg` differ, one line per difference
 * naming its path; [] when they agree: the same field names, per field the same kind (text,
 * number, flag, list, message; messages compared field by field), and a field optional in
 * the definition has presence in the proto (proto3 `optional`, a message, a list) and the
 * other way round.
 */
function differences(schema: z.ZodType, msg: ProtoMessage, path: string): string[] {
  const out: string[] = [];
  const shape = (schema as unknown as z.ZodObject).shape;
  const fields = new Map(msg.field.map((f) => [f.name, f]));
  for (const name of fields.keys())
    if (!(name in shape)) out.push(`${path}.${name}: in the proto only`);
  for (const [name, zs] of Object.entries(shape)) {
    const f = fields.get(name);
    const at = `${path}.${name}`;
    if (!f) {
      out.push(`${at}: in the definition only`);
      continue;
    }
    let t = zs as z.ZodType;
    const optional = t.type === 'optional';
    if (optional) t = (t as z.ZodOptional).unwrap() as z.ZodType;
    const repeated = f.label === 'LABEL_REPEATED';
    const presence = msg.oneofDecl.some((o) => o.name === `_${name}`);
    if (t.type === 'array') {
      if (!repeated) out.push(`${at}: a list in the definition, not in the proto`);
      t = (t as z.ZodArray).element as z.ZodType;
      out.push(...kind(t, f, `${at}[]`));
      continue;
    }
    if (repeated) out.push(`${at}: a list in the proto, not in the definition`);
    if (optional && !presence && f.type !== 'TYPE_MESSAGE' && !EMPTY_MEANS_ABSENT.has(at))
      out.push(`${at}: optional in the definition, always present in the proto`);
    if (!optional && presence) out.push(`${at}: optional in the proto only`);
    out.push(...kind(t, f, at));
  }
  return out;
}

function kind(t: z.ZodType, f: ProtoField, at: string): string[] {
  const expect = (ok: boolean, what: string) => (ok ? [] : [`${at}: ${what}, proto ${f.type}`]);
  switch (t.type) {
    case 'string':
      return expect(f.type === 'TYPE_STRING', 'text');
    case 'enum':
      return expect(f.type === 'TYPE_STRING' || f.type === 'TYPE_ENUM', 'one of names');
    case 'number':
      return expect(INTEGER.has(f.type), 'a number');
    case 'boolean':
      return expect(f.type === 'TYPE_BOOL', 'a flag');
    case 'object':
      return f.type === 'TYPE_MESSAGE'
        ? differences(t, message(f.typeName), at)
        : [`${at}: a message, proto ${f.type}`];
    default:
      return [`${at}: zod ${t.type} has no counterpart in the proto`];
  }
}

describe('the status has one definition', () => {
  it("the proto's StatusResponse has the fields of DaemonStatus (names, kinds, presence)", () => {
    expect(differences(DaemonStatus, message('StatusResponse'), 'StatusResponse')).toEqual([]);
  });

  it('the check finds a field on one side only and a kind that differs', () => {
    const msg = message('StatusResponse');
    const extra = DaemonStatus.extend({ uptimeSec: DaemonStatus.shape.objects.element.shape.id });
    expect(differences(extra, msg, 'StatusResponse')).toEqual([
      'StatusResponse.uptimeSec: in the definition only',
    ]);
    const fewer = DaemonStatus.omit({ confirmDeadline: true });
    expect(differences(fewer, msg, 'StatusResponse')).toEqual([
      'StatusResponse.confirmDeadline: in the proto only',
    ]);
    const wrong = DaemonStatus.extend({ objects: DaemonStatus.shape.tunnels });
    expect(differences(wrong, msg, 'StatusResponse')).toContain(
      'StatusResponse.objects[].kind: in the proto only',
    );
  });

  it('core.ts StatusResponse is the inferred type of DaemonStatus; the document adds source and renames two fields', () => {
    expectTypeOf<StatusResponse>().toEqualTypeOf<z.infer<typeof DaemonStatus>>();
    const daemon = StatusDocument.options.find((o) => o.shape.source.value === 'daemon')!;
    const rename: Record<string, string> = { configPath: 'config', config: 'configState' };
    expect(Object.keys(daemon.shape)).toEqual([
      'source',
      ...['state', 'configPath', 'config'].map((k) => rename[k] ?? k),
      ...Object.keys(DaemonStatus.shape).filter(
        (k) => !['state', 'configPath', 'config'].includes(k),
      ),
    ]);
    for (const [k, v] of Object.entries(DaemonStatus.shape))
      expect(daemon.shape[(rename[k] ?? k) as keyof typeof daemon.shape]).toBe(v);
  });

  it("the monitor's document has one definition: the proto's TopDocument has TopDocument's fields", () => {
    expect(differences(TopDocument, message('TopDocument'), 'TopDocument')).toEqual([]);
    const extra = TopDocument.extend({ hostname: TopDocument.shape.at });
    expect(differences(extra, message('TopDocument'), 'TopDocument')).toEqual([
      'TopDocument.hostname: in the definition only',
    ]);
  });

  it("a tunnel's health is tunnel-health.ts's; a detached engine's answer is a tunnel line", () => {
    expectTypeOf<HealthState>().toEqualTypeOf<(typeof TUNNEL_HEALTH)[number]>();
    expectTypeOf<DetachedEngineStatus>().toExtend<TunnelStatus>();
  });
});
