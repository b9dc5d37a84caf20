/**
 * Secret resolution. Secrets come inline, from a file, or from the environment; their
 * values never enter plans, status, logs or API responses — only fingerprints do.
 */
import { x25519PublicOf } from '../util/x25519-der.js';
import { statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Issue } from '../errors.js';
import { LIMITS, readTextFileSync } from '../util/files.js';
import { isWgLike, type Config, type Secret } from './schema.js';
import { hasControl, utf8Length } from './grammar.js';
import type { PathKey } from './positions.js';
import type { MergedPositions } from './overlay.js';
import { formatPath, lineCol } from './positions.js';

export const REDACTED = '(sensitive)';

export interface SecretContext {
  /** the config file; relative `file:` paths resolve against its directory */
  configFile: string;
  env: NodeJS.ProcessEnv;
  /** set: `{env:}` secrets are refused with this reason (a config given through the daemon's API) */
  envRefused?: string;
  /** the `{age:}` secrets, decrypted beforehand by file path (config/age.ts resolveAgeSecrets) */
  age?: ReadonlyMap<string, string | Error>;
}

import { describeSecret } from './describe.js';
export { describeSecret } from './describe.js';
export { fingerprint } from './fingerprint.js';

export function readSecret(s: Secret, ctx: SecretContext): string {
  if (typeof s === 'string') return s;
  if ('env' in s) {
    if (ctx.envRefused) throw new Error(ctx.envRefused);
    const v = ctx.env[s.env];
    if (v === undefined || v === '') throw new Error(`environment variable ${s.env} is not set`);
    return v.trim();
  }
  if ('age' in s) {
    const v = ctx.age?.get(secretFilePath(s.age, ctx.configFile));
    if (v === undefined) throw new Error('age secrets are decrypted before they are read');
    if (v instanceof Error) throw v;
    return v.trim();
  }
  // a regular file of at most LIMITS.secret bytes: a FIFO or /dev/zero is refused at once
  return readTextFileSync(secretFilePath(s.file, ctx.configFile), {
    maxBytes: LIMITS.secret,
  }).trim();
}

/** The path a `{file:}` secret names: relative paths resolve against the config file's directory. */
export function secretFilePath(file: string, configFile: string): string {
  return isAbsolute(file) ? file : resolve(dirname(configFile), file);
}

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export interface SecretRef {
  path: PathKey[];
  secret: Secret;
  /** key material must be a base64 32-byte key */
  isKey: boolean;
}

export function secretRefs(c: Config): SecretRef[] {
  const refs: SecretRef[] = [];
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (isWgLike(t)) {
      refs.push({ path: ['tunnels', name, 'privateKey'], secret: t.privateKey, isKey: true });
      t.peers.forEach((p, i) => {
        if (p.presharedKey)
          refs.push({
            path: ['tunnels', name, 'peers', i, 'presharedKey'],
            secret: p.presharedKey,
            isKey: true,
          });
      });
      // AWG 3.x: must match the peer like a PSK; only its fingerprint leaves this module
      if (t.type === 'amneziawg' && t.obfuscation.headerProtectionKey)
        refs.push({
          path: ['tunnels', name, 'obfuscation', 'headerProtectionKey'],
          secret: t.obfuscation.headerProtectionKey,
          isKey: true,
        });
    } else if (t.auth) {
      refs.push({
        path: ['tunnels', name, 'auth', 'password'],
        secret: t.auth.password,
        isKey: false,
      });
    }
  }
  return refs;
}

/** Resolve every secret; problems come back as located issues (values never appear). */
export function checkSecrets(
  c: Config,
  ctx: SecretContext,
  positions?: MergedPositions,
): { values: Map<string, string>; issues: Issue[] } {
  const values = new Map<string, string>();
  const issues: Issue[] = [];
  for (const ref of secretRefs(c)) {
    const path = formatPath(ref.path);
    const pos = positions?.locate(ref.path);
    // a relative secret file is relative to the file that names it (an overlay's own directory)
    const own = { ...ctx, configFile: pos?.file ?? ctx.configFile };
    const at = { file: own.configFile, ...lineCol(pos), path };
    let v: string;
    try {
      v = readSecret(ref.secret, own);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      issues.push({
        ...at,
        severity: 'error',
        message:
          code === 'ENOENT'
            ? `secret file not found (${describeSecret(ref.secret)})`
            : `cannot read secret (${describeSecret(ref.secret)}): ${(e as Error).message}`,
      });
      continue;
    }
    if (ref.isKey && !KEY_RE.test(v)) {
      issues.push({
        ...at,
        severity: 'error',
        message: `secret (${describeSecret(ref.secret)}) is not a base64-encoded 32-byte key`,
      });
      continue;
    }
    // UAPI reads an all-zero private_key as "remove the key": the engine would run keyless
    if (ref.path.at(-1) === 'privateKey' && Buffer.from(v, 'base64').every((b) => b === 0)) {
      issues.push({
        ...at,
        severity: 'error',
        message: `secret (${describeSecret(ref.secret)}) is an all-zero key, which WireGuard reads as no private key`,
      });
      continue;
    }
    // a proxy password travels length-prefixed (SOCKS5, RFC 1929: at most 255 bytes) or in
    // base64 (HTTP Basic); like every config string it holds no control character
    if (ref.path.at(-1) === 'password' && (hasControl(v) || utf8Length(v) > 255)) {
      issues.push({
        ...at,
        severity: 'error',
        message: `secret (${describeSecret(ref.secret)}) must be at most 255 bytes with no control characters (line breaks, NUL)`,
      });
      continue;
    }
    if (ref.path.at(-1) === 'headerProtectionKey' && Buffer.from(v, 'base64').every((b) => b === 0))
      issues.push({
        ...at,
        severity: 'warning',
        message: 'an all-zero header protection key turns header protection off',
      });
    if (typeof ref.secret === 'string')
      issues.push({
        ...at,
        severity: 'warning',
        message: 'inline secret: prefer {file: ...} or {env: ...} so the config can be shared',
      });
    else if ('file' in ref.secret) {
      const p = secretFilePath(ref.secret.file, own.configFile);
      if ((statSync(p).mode & 0o077) !== 0)
        issues.push({
          ...at,
          severity: 'warning',
          message: `secret file ${ref.secret.file} is readable by group/others; chmod 600 it`,
        });
    }
    values.set(path, v);
  }
  // A peer that is this interface itself: the engine would drop it silently and every apply
  // would fail verification. Only checkable once the private key is known.
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (!isWgLike(t)) continue;
    const priv = values.get(`tunnels.${name}.privateKey`);
    if (!priv) continue;
    const pub = publicKeyOf(priv);
    t.peers.forEach((p, i) => {
      if (p.publicKey !== pub) return;
      const path = ['tunnels', name, 'peers', i, 'publicKey'];
      const pos = positions?.locate(path);
      issues.push({
        file: pos?.file ?? ctx.configFile,
        ...lineCol(pos),
        path: formatPath(path),
        severity: 'error',
        message:
          "is this tunnel's own public key (derived from its privateKey); a peer must be the other side",
      });
    });
  }
  return { values, issues };
}

/** X25519 public key (base64) of a base64 private key, through node:crypto (util/x25519-der.ts). */
export function publicKeyOf(privateKeyB64: string): string {
  return Buffer.from(x25519PublicOf(Buffer.from(privateKeyB64, 'base64'))).toString('base64');
}
