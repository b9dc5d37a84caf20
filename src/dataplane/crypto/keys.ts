/** Key helpers: generation, derivation, and the two text forms (base64 configs, hex UAPI). */
import { AwgError } from '../../errors.js';
import { KEY_SIZE, clamp, generatePrivateKey, publicKey } from './x25519.js';

export { KEY_SIZE, clamp, generatePrivateKey, publicKey };

export function keyFromBase64(s: string): Uint8Array {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t))
    throw new AwgError('invalid-config', 'key must be 32 bytes of base64 (44 characters)');
  return new Uint8Array(Buffer.from(t, 'base64'));
}

export function keyToBase64(k: Uint8Array): string {
  return Buffer.from(k).toString('base64');
}

export function keyFromHex(s: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(s))
    throw new AwgError('invalid-config', 'key must be 64 hex characters');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function keyToHex(k: Uint8Array): string {
  return Buffer.from(k).toString('hex');
}

export function isZeroKey(k: Uint8Array): boolean {
  let acc = 0;
  for (const b of k) acc |= b;
  return acc === 0;
}

export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

export function generateKeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const sk = generatePrivateKey();
  return { privateKey: sk, publicKey: publicKey(sk) };
}
