import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/** A short stable fingerprint so plans can show that a secret changed without showing it. Pure. */
export function fingerprint(value: string): string {
  return 'sha256:' + bytesToHex(sha256(utf8ToBytes(value))).slice(0, 12);
}
