/**
 * X25519 raw keys as node:crypto KeyObjects: a raw 32-byte key wrapped in the fixed PKCS#8 or
 * SPKI DER head. Node's JWK import is no way round it (Node 24.22.3 refuses an OKP JWK whose
 * `x` does not match its `d`, and the public half is what is asked for). Shared by the config's
 * key checks (secrets.ts) and the data plane's node:crypto fallback (dataplane/crypto/x25519.ts).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

const PKCS8_HEAD = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_HEAD = Buffer.from('302a300506032b656e032100', 'hex');
const KEY_SIZE = 32;

export function x25519PrivateKeyObject(sk: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_HEAD, sk]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKeyObject(pk: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_HEAD, pk]), format: 'der', type: 'spki' });
}

/** the raw public half of a private key (a KeyObject, or its raw 32 bytes) */
export function x25519PublicOf(sk: Uint8Array | KeyObject): Uint8Array {
  const ko = sk instanceof Uint8Array ? x25519PrivateKeyObject(sk) : sk;
  const der = createPublicKey(ko).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - KEY_SIZE));
}
