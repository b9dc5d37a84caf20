/**
 * A WireGuard / AmneziaWG tunnel → an AmneziaVPN `vpn://` key, in the shape the AmneziaVPN
 * apps write for a connection shared from a self-hosted server: a document with one
 * container — `amnezia-wireguard` for WireGuard, `amnezia-awg` for AmneziaWG 1.0 parameters
 * (Jc, Jmin, Jmax, S1, S2, single H values), `amnezia-awg2` with protocol_version "2" when
 * any 2.0 parameter is set (S3, S4, H ranges, I1–I5) and "3.1" when any 3.x one is (header
 * protection, trailers, padding, timers) — whose `last_config` holds the wg-quick text and
 * the same values as separate fields; serialized as Qt's QJsonDocument does (keys sorted,
 * 4-space indent), qCompress'd (4-byte big-endian length + zlib, level 8) and base64url
 * without padding. The wg-quick text is exportWgQuick's without the header line and with MTU
 * only when the tunnel sets one, so `awg import` of the key gives the tunnel back. Pure.
 */
import { deflateSync } from 'node:zlib';
import { firstObfuscation } from './profiles.js';
import { exportWgQuick, formatRange, OBF_KEYS } from './export.js';
import { isKeepaliveRange } from './keepalive.js';
import { effectiveMtu } from './mtu.js';
import type { AwgObfuscation, Secret, U32Range, WgLikeTunnel } from './schema.js';
import { ENDPOINT_RE } from './schema.js';
import { publicKeyOf } from './secrets.js';

export type VpnContainerKind = 'amnezia-wireguard' | 'amnezia-awg' | 'amnezia-awg2';

export interface VpnExport {
  key: string;
  container: VpnContainerKind;
  /** "2" or "3.1" for amnezia-awg2 */
  protocolVersion?: string;
  /** the JSON document before compression (Qt's indented form) */
  json: string;
}

/** Why a tunnel cannot become a key (AmneziaVPN holds one peer with an endpoint). */
export class VpnExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VpnExportError';
  }
}

type Json = string | number | boolean | Json[] | { [k: string]: Json };

/** Qt's QJsonDocument::toJson: keys sorted by UTF-16 code unit; Indented or Compact. */
export function qtJson(v: Json, compact: boolean): string {
  return write(v, 0, compact) + (compact ? '' : '\n');
}

function write(v: Json, indent: number, compact: boolean): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const pad = ' '.repeat(4 * (indent + 1));
  const end = ' '.repeat(4 * indent);
  if (Array.isArray(v)) {
    if (compact) return `[${v.map((x) => write(x, 0, true)).join(',')}]`;
    if (v.length === 0) return `[\n${end}]`;
    return `[\n${v.map((x) => pad + write(x, indent + 1, false)).join(',\n')}\n${end}]`;
  }
  const keys = Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (compact)
    return `{${keys.map((k) => `${JSON.stringify(k)}:${write(v[k]!, 0, true)}`).join(',')}}`;
  if (keys.length === 0) return `{\n${end}}`;
  return `{\n${keys.map((k) => `${pad}${JSON.stringify(k)}: ${write(v[k]!, indent + 1, false)}`).join(',\n')}\n${end}}`;
}

/** Qt's qCompress (level 8) and the apps' base64url without padding, behind `vpn://`. */
export function packVpnKey(json: string): string {
  const raw = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(raw.length, 0);
  const packed = Buffer.concat([head, deflateSync(raw, { level: 8 })]);
  return `vpn://${packed.toString('base64url')}`;
}

const AWG2_ONLY: (keyof AwgObfuscation)[] = ['s3', 's4', 'i1', 'i2', 'i3', 'i4', 'i5'];
const AWG3: (keyof AwgObfuscation)[] = [
  'headerProtectionKey',
  'contentPaddingAddition',
  'rekeyAfterTime',
  'rekeyTimeout',
  'rejectAfterTime',
  'keepaliveTimeout',
  'maxHandshakeAttempts',
  'randomTrailers',
  'disableCookies',
];

const isRange = (r: unknown): boolean =>
  r !== undefined && formatRange(r as U32Range).includes('-');

/** The container (and AmneziaWG generation) a tunnel's parameters need. */
export function vpnContainerOf(t: WgLikeTunnel): {
  container: VpnContainerKind;
  protocolVersion?: string;
} {
  if (t.type !== 'amneziawg') return { container: 'amnezia-wireguard' };
  const o = firstObfuscation(t);
  // a keepalive range is AmneziaWG 3.x too (persistent_keepalive_interval=MIN-MAX)
  if (
    AWG3.some((k) => o[k] !== undefined) ||
    t.peers.some((p) => isKeepaliveRange(p.persistentKeepalive))
  )
    return { container: 'amnezia-awg2', protocolVersion: '3.1' };
  if (
    AWG2_ONLY.some((k) => o[k] !== undefined) ||
    (['h1', 'h2', 'h3', 'h4'] as const).some((k) => isRange(o[k]))
  )
    return { container: 'amnezia-awg2', protocolVersion: '2' };
  return { container: 'amnezia-awg' };
}

/** the AmneziaWG values as the INI (and the key's fields) write them */
function awgFields(
  t: WgLikeTunnel,
  resolve: (s: Secret) => string,
  all2: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (t.type !== 'amneziawg') return out;
  const o = firstObfuscation(t);
  for (const [k, name] of OBF_KEYS) {
    const v = o[k];
    if (v === undefined) continue;
    if (k === 'headerProtectionKey') out[name] = resolve(v as Secret).trim();
    else if (typeof v === 'boolean') out[name] = v ? 'on' : 'off';
    else out[name] = typeof v === 'number' ? String(v) : formatRange(v as U32Range);
  }
  // the 2.0 apps write every I-field, empty when unset
  if (all2) for (const i of ['I1', 'I2', 'I3', 'I4', 'I5']) out[i] ??= '';
  return out;
}

/** Export one tunnel as a key. Throws VpnExportError when AmneziaVPN cannot hold it. */
export function exportVpnKey(
  tunnelName: string,
  t: WgLikeTunnel,
  resolveSecret: (s: Secret) => string,
): VpnExport {
  if (t.peers.length !== 1)
    throw new VpnExportError(
      `tunnel ${tunnelName} has ${t.peers.length} peers; an AmneziaVPN key holds exactly one (a server)`,
    );
  const peer = t.peers[0]!;
  const m = peer.endpoint === undefined ? null : ENDPOINT_RE.exec(peer.endpoint);
  if (!m)
    throw new VpnExportError(
      `tunnel ${tunnelName}: its peer has no endpoint; an AmneziaVPN key needs the server's host and port`,
    );
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  const { container, protocolVersion } = vpnContainerOf(t);
  const privateKey = resolveSecret(t.privateKey).trim();
  const publicKey = publicKeyOf(privateKey);
  const ini = exportWgQuick(tunnelName, t, resolveSecret, { header: false, mtu: 'explicit' });
  const awg = awgFields(t, resolveSecret, container === 'amnezia-awg2');
  const v4 = t.addresses.find((a) => !a.includes(':')) ?? t.addresses[0] ?? '';
  const last: Record<string, Json> = {
    ...awg,
    allowed_ips: peer.allowedIPs ?? [],
    clientId: publicKey,
    client_ip: v4.replace(/\/\d+$/, ''),
    client_priv_key: privateKey,
    client_pub_key: publicKey,
    config: ini,
    hostName: host,
    mtu: String(effectiveMtu(t)),
    port,
    server_pub_key: peer.publicKey,
  };
  if (peer.presharedKey !== undefined) last.psk_key = resolveSecret(peer.presharedKey).trim();
  if (peer.persistentKeepalive !== undefined)
    last.persistent_keep_alive = formatRange(peer.persistentKeepalive);
  const proto: Record<string, Json> = {
    ...(container === 'amnezia-wireguard' ? {} : awg),
    last_config: qtJson(last, false),
    port: String(port),
    transport_proto: 'udp',
    ...(protocolVersion !== undefined ? { protocol_version: protocolVersion } : {}),
  };
  const doc: Record<string, Json> = {
    containers: [
      {
        container,
        [container === 'amnezia-wireguard' ? 'wireguard' : 'awg']: proto,
      },
    ],
    defaultContainer: container,
    description: tunnelName,
    hostName: host,
  };
  if (t.dns?.[0] !== undefined) doc.dns1 = t.dns[0];
  if (t.dns?.[1] !== undefined) doc.dns2 = t.dns[1];
  const json = qtJson(doc, false);
  return {
    key: packVpnKey(json),
    container,
    ...(protocolVersion !== undefined ? { protocolVersion } : {}),
    json,
  };
}
