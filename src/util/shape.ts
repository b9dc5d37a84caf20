/**
 * Shape guards for JSON read back from disk or a pipe (state records, observations, the
 * placer's messages): what may be trusted before its fields go to a command line.
 */

/** a plain JSON object (not null, not an array) */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** an array of strings */
export const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');
