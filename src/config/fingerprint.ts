import { createHmac } from 'node:crypto';

/**
 * A short stable fingerprint so plans, status and state files can show that a secret changed
 * without showing it: HMAC-SHA256 of the value keyed by the per-host secret
 * (util/host-key.ts), the first 48 bits in hex. Keyed, so a fingerprint that a reader of a
 * plan, a status document or a state file sees cannot be checked against guessed values (a
 * bare hash of a low-entropy password could be); stable for one key, so plans stay
 * deterministic on one host. Pure.
 */
export function fingerprint(value: string, key: Uint8Array): string {
  if (key.length < 16) throw new Error('fingerprint: the key must have at least 16 bytes');
  return 'hmac:' + createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 12);
}
