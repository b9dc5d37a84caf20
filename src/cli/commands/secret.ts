/**
 * `awg secret keygen|recipient|encrypt|decrypt`: age identities and files for `{age:}`
 * secrets (config/age.ts). Files interoperate with the `age` CLI; identity files with
 * `age-keygen` and sops' age backend.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { AwgError, toAwgError } from '../../errors.js';
import { LIMITS, readRegularFileSync, writeFileAtomicSync } from '../../util/files.js';
import { printError, type Io } from '../output.js';

export interface SecretOptions {
  output?: string;
  force?: boolean;
  recipient?: string[];
  recipientsFile?: string[];
  armor?: boolean;
  identity?: string;
}

const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

function writeOut(path: string, data: string | Uint8Array, force: boolean | undefined): void {
  const p = resolve(path);
  if (!force && existsSync(p))
    throw new AwgError('invalid-config', `${path} exists; add --force to replace it`);
  if (!existsSync(dirname(p)))
    throw new AwgError('invalid-config', `${dirname(p)}: no such directory`);
  writeFileAtomicSync(p, data, { mode: 0o600 });
}

/** stdin or a file, at most 64 KiB: a secret, not a disk image */
function readInput(file: string | undefined): Buffer {
  if (file === undefined || file === '-') {
    const b = readFileSync(0);
    if (b.length > LIMITS.secret)
      throw new AwgError('invalid-config', `standard input: more than ${LIMITS.secret} bytes`);
    return b;
  }
  return readRegularFileSync(file, { maxBytes: LIMITS.secret });
}

function recipientsOf(o: SecretOptions): string[] {
  const out = [...(o.recipient ?? [])];
  for (const f of o.recipientsFile ?? []) {
    for (const line of readRegularFileSync(f, { maxBytes: LIMITS.secret })
      .toString('utf8')
      .split(/\r?\n/)) {
      const l = line.trim();
      if (l && !l.startsWith('#')) out.push(l);
    }
  }
  if (out.length === 0)
    throw new AwgError(
      'invalid-config',
      "no recipient: give -r age1… (a host's `awg secret recipient`) or -R FILE",
    );
  for (const r of out)
    if (!RECIPIENT.test(r))
      throw new AwgError(
        'invalid-config',
        `"${r.slice(0, 80)}" is not an age X25519 recipient (age1…)`,
      );
  return [...new Set(out)];
}

export async function secretCommand(
  io: Io,
  sub: 'keygen' | 'recipient' | 'encrypt' | 'decrypt',
  o: SecretOptions,
  input?: string,
): Promise<number> {
  try {
    const age = await import('../../config/age.js');
    switch (sub) {
      case 'keygen': {
        const { identity, recipient } = await age.generateIdentity();
        const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
        if (o.output) {
          writeOut(o.output, text, o.force);
          io.err(`wrote ${o.output} (mode 600); its recipient:\n`);
          io.out(`${recipient}\n`);
        } else io.out(text);
        return 0;
      }
      case 'recipient': {
        const ids = age.readIdentities(o.identity ?? age.ageIdentityPath());
        for (const id of ids) io.out(`${await age.recipientOf(id)}\n`);
        return 0;
      }
      case 'encrypt': {
        const recipients = recipientsOf(o);
        const out = await age.encryptAge(readInput(input), recipients, Boolean(o.armor));
        if (o.output) writeOut(o.output, out, o.force);
        else if (o.armor) io.out(Buffer.from(out).toString('utf8'));
        else
          throw new AwgError(
            'invalid-config',
            'binary output needs -o FILE (or --armor for text on stdout)',
          );
        return 0;
      }
      case 'decrypt': {
        const identityFile = o.identity ?? age.ageIdentityPath();
        const ids = age.readIdentities(identityFile);
        if (!input) throw new AwgError('invalid-config', 'name the age file to decrypt');
        let plain: Uint8Array;
        try {
          plain = await age.decryptAge(readRegularFileSync(input, { maxBytes: 1024 * 1024 }), ids);
        } catch (e) {
          if (/no identity matched/i.test((e as Error).message))
            throw new AwgError(
              'permission',
              `${input} is not encrypted to the identity in ${identityFile}`,
            );
          throw new AwgError('invalid-config', `${input}: ${(e as Error).message}`);
        }
        if (o.output) writeOut(o.output, plain, o.force);
        else io.out(Buffer.from(plain).toString('utf8'));
        return 0;
      }
    }
  } catch (e) {
    const err = toAwgError(e, 'invalid-config');
    printError(io, err);
    return err.exitCode;
  }
}
