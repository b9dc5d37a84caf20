/** `awg genkey` / `awg pubkey` / `awg genpsk`: the wg(8) key helpers, same formats. */
import { randomBytes } from 'node:crypto';
import {
  generatePrivateKey,
  keyFromBase64,
  keyToBase64,
  publicKey,
} from '../../dataplane/crypto/keys.js';
import type { Io } from '../output.js';

export function genkeyCommand(io: Io): number {
  io.out(keyToBase64(generatePrivateKey()) + '\n');
  return 0;
}

export function genpskCommand(io: Io): number {
  io.out(randomBytes(32).toString('base64') + '\n');
  return 0;
}

export async function pubkeyCommand(
  io: Io,
  input: NodeJS.ReadableStream = process.stdin,
): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.from(c as Buffer));
  const text = Buffer.concat(chunks).toString('utf8').trim();
  let key: Uint8Array;
  try {
    key = keyFromBase64(text);
  } catch {
    io.err('awg pubkey: stdin is not a base64-encoded 32-byte private key\n');
    return 1;
  }
  io.out(keyToBase64(publicKey(key)) + '\n');
  return 0;
}
