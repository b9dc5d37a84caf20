import type { Secret } from './schema.js';

/** Where a secret comes from, without its value. Pure. */
export function describeSecret(s: Secret): string {
  if (typeof s === 'string') return 'inline';
  if ('file' in s) return `file ${s.file}`;
  if ('age' in s) return `age ${s.age}`;
  return `env ${s.env}`;
}
