import { createHash } from 'node:crypto';

/** A short stable fingerprint so plans can show that a secret changed without showing it. Pure. */
export function fingerprint(value: string): string {
  return 'sha256:' + createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 12);
}
