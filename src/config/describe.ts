import type { Secret } from './schema.js';

/** Where a secret comes from, without its value. Pure. */
export function describeSecret(s: Secret): string {
  if (typeof s === 'string') return 'inline';
  if ('file' in s) return `file ${s.file}`;
  return `env ${s.env}`;
}
