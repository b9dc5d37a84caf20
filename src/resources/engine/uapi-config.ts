/**
 * EngineSpec (+ secret values) → a DeviceChange, and that as UAPI `set=1` text (docs/dataplane.md,
 * "UAPI"). Pure. Keys are hex in UAPI, base64 in the config. `full` configures from scratch
 * (replace_peers); otherwise a delta that keeps sessions of peers that stay (only their
 * fields are rewritten). The kernel engine sends the same DeviceChange over generic netlink
 * (kernel-host.ts). The text is built as key/value pairs by the UAPI emitter
 * (dataplane/device/uapi-text.ts), which refuses a value that could break the line framing.
 */
import { AwgError } from '../../errors.js';
import { specEqual } from '../../util/canonical.js';
import type { KeepaliveSpec } from '../../config/keepalive.js';
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

/**
 * One configuration step of a WireGuard device, whatever speaks it: UAPI `set=1` text (our
 * engine, external engines) or a WG_CMD_SET_DEVICE (the kernel, kernel-host.ts). Keys base64.
 * Absent fields stay as they are.
 */
export interface DeviceChange {
  privateKey?: string;
  listenPort?: number;
  fwmark?: number;
  /** AmneziaWG device keys (UAPI only; the kernel has none) */
  obfuscation: UapiPair[];
  /** the peers below replace all the device has */
  replacePeers: boolean;
  peers: PeerChange[];
}

export type PeerChange =
  | { publicKey: string; remove: true }
  | {
      publicKey: string;
      remove?: undefined;
      /** base64; null: none (written as zeros, which removes one) */
      presharedKey: string | null;
      /** as configured: `host:port` (a host name is resolved by whoever applies it) */
      endpoint: string | null;
      /** seconds (0: off), or AmneziaWG 3.x `"MIN-MAX"` (model WgEnginePeer) */
      persistentKeepalive: KeepaliveSpec;
      /** canonical CIDRs; they replace the peer's */
      allowedIPs: string[];
    };

function peerChange(p: WgEnginePeer, secrets: EngineSecrets): PeerChange {
  return {
    publicKey: p.publicKey,
    presharedKey: secrets.presharedKeys.get(p.publicKey) ?? null,
    endpoint: p.endpoint,
    persistentKeepalive: p.persistentKeepalive,
    allowedIPs: p.allowedIPs,
  };
}

/** Complete configuration for a fresh device. */
export function fullSet(spec: WgEngineSpec, secrets: EngineSecrets): DeviceChange {
  const c = spec.config;
  return {
    privateKey: secrets.privateKey,
    listenPort: c.listenPort,
    fwmark: c.fwmark,
    obfuscation: awgLines(c.obfuscation, secrets),
    replacePeers: true,
    peers: c.peers.map((p) => peerChange(p, secrets)),
  };
}

/**
 * Reconfigure a running device from `before` to `after` without dropping sessions of peers
 * that remain: peers are updated in place, removed peers are removed by key. The private
 * key and listen port are only sent when they changed (either resets every session).
 */
export function deltaSet(
  before: WgEngineSpec,
  after: WgEngineSpec,
  secrets: EngineSecrets,
): DeviceChange {
  const b = before.config;
  const a = after.config;
  const keep = new Set(a.peers.map((p) => p.publicKey));
  const old = new Map(b.peers.map((p) => [p.publicKey, p]));
  return {
    ...(b.privateKey !== a.privateKey ? { privateKey: secrets.privateKey } : {}),
    ...(b.listenPort !== a.listenPort ? { listenPort: a.listenPort } : {}),
    ...(b.fwmark !== a.fwmark ? { fwmark: a.fwmark } : {}),
    obfuscation: !specEqual(b.obfuscation ?? {}, a.obfuscation ?? {})
      ? awgLines(a.obfuscation, secrets, b.obfuscation)
      : [],
    replacePeers: false,
    peers: [
      ...b.peers
        .filter((p) => !keep.has(p.publicKey))
        .map((p): PeerChange => ({ publicKey: p.publicKey, remove: true })),
      ...a.peers
        .filter((p) => !specEqual(old.get(p.publicKey), p))
        .map((p) => peerChange(p, secrets)),
    ],
  };
}

/** A DeviceChange as UAPI `set=1` text (docs/dataplane.md, "UAPI"). */
export function uapiSetText(c: DeviceChange): string {
  const lines: UapiPair[] = [];
  if (c.privateKey !== undefined) lines.push(['private_key', b64ToHex(c.privateKey)]);
  if (c.listenPort !== undefined) lines.push(['listen_port', c.listenPort]);
  if (c.fwmark !== undefined) lines.push(['fwmark', c.fwmark]);
  lines.push(...c.obfuscation);
  if (c.replacePeers) lines.push(['replace_peers', true]);
  for (const p of c.peers) {
    lines.push(['public_key', b64ToHex(p.publicKey)]);
    if (p.remove) {
      lines.push(['remove', true]);
      continue;
    }
    lines.push(['preshared_key', p.presharedKey ? b64ToHex(p.presharedKey) : ZERO_KEY]);
    if (p.endpoint) lines.push(['endpoint', p.endpoint]);
    // a range as amneziawg-go 3.x reads it ("25-35"); an engine before 3.x refuses it
    lines.push(['persistent_keepalive_interval', p.persistentKeepalive]);
    lines.push(['replace_allowed_ips', true]);
    for (const ip of p.allowedIPs) lines.push(['allowed_ip', ip]);
  }
  return uapiSetRequest(lines);
}

/** Complete configuration for a fresh engine, as UAPI text. */
export const fullSetText = (spec: WgEngineSpec, secrets: EngineSecrets): string =>
  uapiSetText(fullSet(spec, secrets));

/** `deltaSet` as UAPI text. */
export const deltaSetText = (
  before: WgEngineSpec,
  after: WgEngineSpec,
  secrets: EngineSecrets,
): string => uapiSetText(deltaSet(before, after, secrets));
