/**
 * What every wire mapping uses: the error for a message that does not say what the proto
 * promises, optional fields (absent stays absent, both ways), and the proto enums, whose
 * value names are the domain's names in SCREAMING_SNAKE_CASE behind a prefix
 * (`failed-closed` ⇄ `STATE_FAILED_CLOSED`). Pure.
 */
import { AwgError } from '../../errors.js';

export function bad(what: string): AwgError {
  return new AwgError('bug', `malformed API message: ${what}`);
}

/** `{ [k]: v }`, or nothing when v is unset (proto-loader gives an unset message field as null) */
export const opt = <K extends string, V>(k: K, v: V | undefined | null): { [P in K]?: V } =>
  v === undefined || v === null ? {} : ({ [k]: v } as { [P in K]?: V });

export function errIn(
  e: { kind: string; message: string } | undefined | null,
): { kind: string; message: string } | undefined {
  return e ? { kind: e.kind, message: e.message } : undefined;
}

type Snake<S extends string> = S extends `${infer A}-${infer B}` ? `${A}_${Snake<B>}` : S;
/** the proto enum value name of domain value V (`STATE` + `failed-closed`: `STATE_FAILED_CLOSED`) */
export type EnumName<P extends string, V extends string> = `${P}_${Uppercase<Snake<V>>}`;

/** The mapping between a domain list of names and the proto enum named after it by `prefix`. */
export function protoEnum<P extends string, V extends string>(prefix: P, values: readonly V[]) {
  const name = (v: V) => `${prefix}_${v.toUpperCase().replace(/-/g, '_')}` as EnumName<P, V>;
  const byName = new Map<string, V>(values.map((v) => [name(v), v]));
  return {
    toWire: name,
    /** a value this side does not know (the zero value, a newer peer's) is a malformed message */
    fromWire(wire: string): V {
      const v = byName.get(wire);
      if (v === undefined) throw bad(`${prefix} ${wire}`);
      return v;
    },
  };
}
