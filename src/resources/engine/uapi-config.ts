/**
 * EngineSpec (+ secret values) → UAPI `set=1` text (PROTOCOL.md §10). Pure. Keys are hex in
 * UAPI, base64 in the config. `full` configures from scratch (replace_peers); otherwise a
 * delta that keeps sessions of peers that stay (only their fields are rewritten). The text is
 * built as key/value pairs by the UAPI emitter (dataplane/ipc/text.ts), which refuses a value
 * that could break the line framing.
 */
import { AwgError } from '../../errors.js';
import type { EngineObfuscation, WgEnginePeer, WgEngineSpec } from '../../model/resources.js';
import { rangeOf } from '../../config/schema.js';
import { uapiSetRequest, type UapiPair } from '../../dataplane/device/uapi-text.js';

export interface EngineSecrets {
  privateKey: string;
  /** by peer public key (base64) */
  presharedKeys: Map<string, string>;
  /** AWG 3.x, base64; present when the spec's obfuscation has one (there: its fingerprint) */
  headerProtectionKey?: string;
}

export const b64ToHex = (s: string): string => Buffer.from(s, 'base64').toString('hex');

const RANGE_KEYS = [
  ['contentPaddingAddition', 'content_padding_addition'],
  ['rekeyAfterTime', 'rekey_after_time'],
  ['rekeyTimeout', 'rekey_timeout'],
  ['rejectAfterTime', 'reject_after_time'],
  ['keepaliveTimeout', 'keepalive_timeout'],
  ['maxHandshakeAttempts', 'max_handshake_attempts'],
] as const;
const BOOL_KEYS = [
  ['randomTrailers', 'random_trailers'],
  ['disableCookies', 'disable_cookies'],
] as const;
const ZERO_KEY = '0'.repeat(64);

const fmtRange = (v: Parameters<typeof rangeOf>[0]): string => {
  const r = rangeOf(v);
  return r.min === r.max ? String(r.min) : `${r.min}-${r.max}`;
};

/**
 * AWG device keys for `o`. With `reset`, keys set there but absent in `o` are written with
 * their off value, so a delta can take a parameter away (the engine merges keys into its state).
 */
function awgLines(
  o: EngineObfuscation | undefined,
  secrets: EngineSecrets,
  reset?: EngineObfuscation,
): UapiPair[] {
  o ??= {};
  const out: UapiPair[] = [];
  const gone = (k: keyof EngineObfuscation) => o[k] === undefined && reset?.[k] !== undefined;
  for (const k of ['jc', 'jmin', 'jmax', 's1', 's2', 's3', 's4'] as const) {
    if (o[k] !== undefined) out.push([k, o[k]!]);
    else if (gone(k)) out.push([k, 0]);
  }
  (['h1', 'h2', 'h3', 'h4'] as const).forEach((k, i) => {
    if (o[k] !== undefined) out.push([k, fmtRange(o[k])]);
    else if (gone(k)) out.push([k, i + 1]);
  });
  for (const k of ['i1', 'i2', 'i3', 'i4', 'i5'] as const) {
    if (o[k] !== undefined) out.push([k, o[k]!]);
    else if (gone(k)) out.push([k, '']);
  }
  // the spec holds the fingerprint; the key itself comes from the resolved secrets
  if (o.headerProtectionKey !== undefined) {
    if (!secrets.headerProtectionKey)
      throw new AwgError('invalid-config', 'the header protection key was not resolved');
    out.push(['header_protection_key', b64ToHex(secrets.headerProtectionKey)]);
  } else if (gone('headerProtectionKey')) out.push(['header_protection_key', ZERO_KEY]);
  for (const [k, u] of RANGE_KEYS) {
    if (o[k] !== undefined) out.push([u, fmtRange(o[k])]);
    else if (gone(k)) out.push([u, 0]);
  }
  for (const [k, u] of BOOL_KEYS) {
    if (o[k] !== undefined) out.push([u, o[k] ? 1 : 0]);
    else if (gone(k)) out.push([u, 0]);
  }
  return out;
}

function peerLines(p: WgEnginePeer, secrets: EngineSecrets): UapiPair[] {
  const out: UapiPair[] = [['public_key', b64ToHex(p.publicKey)]];
  const psk = secrets.presharedKeys.get(p.publicKey);
  out.push(['preshared_key', psk ? b64ToHex(psk) : ZERO_KEY]);
  if (p.endpoint) out.push(['endpoint', p.endpoint]);
  out.push(['persistent_keepalive_interval', p.persistentKeepalive]);
  out.push(['replace_allowed_ips', true]);
  for (const a of p.allowedIPs) out.push(['allowed_ip', a]);
  return out;
}

/** Complete configuration for a fresh engine. */
export function fullSetText(spec: WgEngineSpec, secrets: EngineSecrets): string {
  const c = spec.config;
  const lines: UapiPair[] = [
    ['private_key', b64ToHex(secrets.privateKey)],
    ['listen_port', c.listenPort],
    ['fwmark', c.fwmark],
    ...awgLines(c.obfuscation, secrets),
    ['replace_peers', true],
  ];
  for (const p of c.peers) lines.push(...peerLines(p, secrets));
  return uapiSetRequest(lines);
}

/**
 * Reconfigure a running engine from `before` to `after` without dropping sessions of peers
 * that remain: peers are updated in place, removed peers are removed by key. The private
 * key and listen port are only sent when they changed (either resets every session).
 */
export function deltaSetText(
  before: WgEngineSpec,
  after: WgEngineSpec,
  secrets: EngineSecrets,
): string {
  const b = before.config;
  const a = after.config;
  const lines: UapiPair[] = [];
  if (b.privateKey !== a.privateKey) lines.push(['private_key', b64ToHex(secrets.privateKey)]);
  if (b.listenPort !== a.listenPort) lines.push(['listen_port', a.listenPort]);
  if (b.fwmark !== a.fwmark) lines.push(['fwmark', a.fwmark]);
  if (JSON.stringify(b.obfuscation ?? {}) !== JSON.stringify(a.obfuscation ?? {}))
    lines.push(...awgLines(a.obfuscation, secrets, b.obfuscation));
  const keep = new Set(a.peers.map((p) => p.publicKey));
  for (const p of b.peers)
    if (!keep.has(p.publicKey)) lines.push(['public_key', b64ToHex(p.publicKey)], ['remove', true]);
  const old = new Map(b.peers.map((p) => [p.publicKey, JSON.stringify(p)]));
  for (const p of a.peers)
    if (old.get(p.publicKey) !== JSON.stringify(p)) lines.push(...peerLines(p, secrets));
  return uapiSetRequest(lines);
}
