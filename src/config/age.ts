/**
 * `{age: FILE}` secrets: files encrypted with age (https://age-encryption.org/v1) to the
 * hosts that may read them, so a shared repository can hold them. Each host decrypts with
 * its own identity file (`AGE-SECRET-KEY-1…` lines, the format of `age-keygen` and of sops'
 * SOPS_AGE_KEY_FILE), default /etc/awg/age-identity.txt or $AWG_AGE_IDENTITY, which must be a
 * regular file only its owner (root, or the user running awg) can read.
 *
 * Files are binary or ASCII-armoured (`age -a`), X25519 recipients (`age1…`): the `age` CLI
 * reads what `awg secret encrypt` writes and the other way round
 * (test/unit/config/age.test.ts runs both when `age` is installed).
 */
import { statSync } from 'node:fs';
import { AwgError } from '../errors.js';
import { LIMITS, readRegularFileSync } from '../util/files.js';
import { secretFilePath, secretRefs } from './secrets.js';
import type { Config } from './schema.js';
import type { MergedPositions } from './overlay.js';

export const DEFAULT_AGE_IDENTITY = '/etc/awg/age-identity.txt';
const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
/** an age file of one secret: header stanzas (~200 bytes per recipient) and a small payload */
const MAX_AGE_FILE = 1024 * 1024;

export function ageIdentityPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.AWG_AGE_IDENTITY || DEFAULT_AGE_IDENTITY;
}

const age = () => import('age-encryption');

/**
 * The identities in an identity file. Refused unless it is a regular file that neither group
 * nor others can read or write, owned by root or by us.
 */
export function readIdentities(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new AwgError(
      'invalid-config',
      `age identity ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`,
      {
        hint:
          'create it with `awg secret keygen -o ' +
          path +
          '` (or point $AWG_AGE_IDENTITY at one) and encrypt the secrets to its recipient',
      },
    );
  }
  const me = process.geteuid?.() ?? 0;
  if (!st.isFile()) throw new AwgError('permission', `age identity ${path} is not a regular file`);
  if (st.uid !== 0 && st.uid !== me)
    throw new AwgError(
      'permission',
      `age identity ${path} is owned by uid ${st.uid}, not root${me !== 0 ? ` or uid ${me}` : ''}`,
    );
  if ((st.mode & 0o077) !== 0)
    throw new AwgError(
      'permission',
      `age identity ${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  const text = readRegularFileSync(path, { maxBytes: LIMITS.secret }).toString('utf8');
  const ids = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (ids.length === 0)
    throw new AwgError('invalid-config', `age identity ${path} holds no AGE-SECRET-KEY-1… line`);
  for (const id of ids)
    if (!id.startsWith('AGE-SECRET-KEY-1'))
      throw new AwgError(
        'invalid-config',
        `age identity ${path}: a line is not an AGE-SECRET-KEY-1… identity (plugins and ssh keys are not supported)`,
      );
  return ids;
}

/** Binary or armoured age file → the binary form. */
export async function ageCiphertext(buf: Uint8Array): Promise<Uint8Array> {
  const head = Buffer.from(buf.subarray(0, 64)).toString('latin1').trimStart();
  if (!head.startsWith(ARMOR_BEGIN)) return buf;
  const { armor } = await age();
  return armor.decode(Buffer.from(buf).toString('utf8'));
}

export async function decryptAge(
  buf: Uint8Array,
  identities: readonly string[],
): Promise<Uint8Array> {
  const { Decrypter } = await age();
  const d = new Decrypter();
  for (const id of identities) d.addIdentity(id);
  return d.decrypt(await ageCiphertext(buf));
}

export async function encryptAge(
  plain: Uint8Array,
  recipients: readonly string[],
  armored: boolean,
): Promise<Uint8Array> {
  const { Encrypter, armor } = await age();
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const ct = await e.encrypt(plain);
  return armored ? Buffer.from(armor.encode(ct), 'utf8') : ct;
}

export async function generateIdentity(): Promise<{ identity: string; recipient: string }> {
  const { generateX25519Identity, identityToRecipient } = await age();
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

export async function recipientOf(identity: string): Promise<string> {
  const { identityToRecipient } = await age();
  return identityToRecipient(identity);
}

/** what age says when none of our identities opens the file, in our words */
function explain(e: unknown, file: string, identityFile: string): Error {
  const m = (e as Error).message ?? String(e);
  if (/no identity matched/i.test(m))
    return new Error(
      `${file} is not encrypted to this host's age identity (${identityFile}); re-encrypt it with this host's recipient (\`awg secret recipient\`)`,
    );
  return new Error(`${file}: not a valid age file for this host: ${m}`);
}

export type AgeValues = Map<string, string | Error>;

/**
 * Decrypt every `{age:}` secret of `config` (relative paths: against the file that names
 * them); the identity file is read only when there is one. Failures are kept per file, so
 * checkSecrets reports each at its line.
 */
export async function resolveAgeSecrets(
  config: Config,
  configFile: string,
  positions: MergedPositions | undefined,
  env: NodeJS.ProcessEnv,
): Promise<AgeValues> {
  const out: AgeValues = new Map();
  const files: string[] = [];
  for (const ref of secretRefs(config)) {
    if (typeof ref.secret !== 'string' && 'age' in ref.secret)
      files.push(secretFilePath(ref.secret.age, positions?.fileOf(ref.path) ?? configFile));
  }
  if (files.length === 0) return out;
  const identityFile = ageIdentityPath(env);
  let identities: string[] | Error;
  try {
    identities = readIdentities(identityFile);
  } catch (e) {
    identities = e as Error;
  }
  for (const f of new Set(files)) {
    if (identities instanceof Error) {
      out.set(f, new Error(`cannot read this host's age identity: ${identities.message}`));
      continue;
    }
    try {
      const buf = readRegularFileSync(f, { maxBytes: MAX_AGE_FILE });
      let plain: Uint8Array;
      try {
        plain = await decryptAge(buf, identities);
      } catch (e) {
        throw explain(e, f, identityFile);
      }
      out.set(f, Buffer.from(plain).toString('utf8'));
    } catch (e) {
      out.set(f, e as Error);
    }
  }
  return out;
}
