/**
 * Secret scrubbing for the comments `awg import` copies from the INI file into the YAML. Pure.
 */
/** a WireGuard key as written in configs: 32 bytes in base64 (what `KEY_RE` of the schema accepts) */
const KEY_SHAPED = /(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=(?![A-Za-z0-9+/=])/g;
/** a name of secret key material, followed by `=` and the value (one token) */
const SECRET_ASSIGN = /\b((?:private|preshared|header[-_ ]?protection)[-_ ]?key\s*=\s*)(\S+)/gi;
const SECRET_NAME = /\b(?:private|preshared|header[-_ ]?protection)[-_ ]?key\b/i;
const PUBLIC_NAME = /\bpublic[-_ ]?key\b/i;
export const SECRET_LEFT_OUT = '<secret not copied by awg import>';

/**
 * A comment as it may go into the YAML: the value of a commented-out `PrivateKey =`,
 * `PresharedKey =`, `HeaderProtectionKey =` and every key-shaped token (a private key looks
 * like a public one) are replaced by SECRET_LEFT_OUT; a line that names only a public key
 * keeps its keys. So secrets people leave in comments (an old key, a key in a hook) never
 * reach the YAML, which `--key-file` promises to keep free of secrets. Pure.
 */
export function scrubSecrets(comment: string): string {
  const secretNamed = SECRET_NAME.test(comment);
  if (!secretNamed && PUBLIC_NAME.test(comment)) return comment;
  return comment
    .replace(SECRET_ASSIGN, (_m, name: string) => `${name}${SECRET_LEFT_OUT}`)
    .replace(KEY_SHAPED, SECRET_LEFT_OUT);
}

/**
 * An INI key name as a message may show it: a line without "=" makes its whole text the
 * key (`PrivateKey abc…` → `PrivateKeyabc…`), so a run of 20+ base64 characters in a name is
 * left out: key material never reaches a message.
 */
export function safeKeyName(k: string): string {
  return k.replace(/[A-Za-z0-9+/]{20,}={0,2}/g, (m) => `<${m.length} characters, not shown>`);
}
