/**
 * Cross-platform UAPI text protocol (docs/dataplane.md#uapi-the-engines-configuration-socket,
 * https://www.wireguard.com/xplatform/),
 * the device side as wireguard-go `device/uapi.go` (the socket is ipc/server.ts): `set=1`
 * bodies parse into a typed DeviceConfig, and device snapshots serialise into `get=1`
 * responses, including the AmneziaWG keys under amneziawg-tools' names. Pure: no I/O.
 */
import { isIP } from 'node:net';
import { AwgError } from '../../errors.js';
import { type AwgParams, defaultAwgParams } from '../awg/params.js';
import { type UintRange, formatRange, isZeroRange, parseRange } from '../awg/range.js';
import { formatEndpoint, splitHostPort } from '../conn/bind.js';
import { isZeroKey } from '../crypto/keys.js';
import type { DeviceConfig, PeerConfig } from './config.js';
import type { DeviceSnapshot } from './status.js';
import { UAPI_CONTROL, UAPI_KEY, uapiReply, type UapiPair } from './uapi-text.js';

/** Linux errno values, written negative as wireguard-go does. */
export const IPC_ERROR = {
  IO: -5,
  INVALID: -22,
  PROTOCOL: -71,
  PORT_IN_USE: -98,
  UNKNOWN: -55,
} as const;

export class UapiError extends AwgError {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super('invalid-config', message);
    this.name = 'UapiError';
  }
}

/**
 * The reply code for a failed set: -22 invalid, -71 protocol (from the parser), -98 port in
 * use (rebinding failed), -55 anything else.
 */
export function toUapiError(e: unknown): UapiError {
  if (e instanceof UapiError) return e;
  const kind = e instanceof AwgError ? e.kind : 'bug';
  const errno =
    kind === 'invalid-config'
      ? IPC_ERROR.INVALID
      : kind === 'driver'
        ? IPC_ERROR.PORT_IN_USE
        : IPC_ERROR.UNKNOWN;
  return new UapiError(errno, (e as Error).message);
}

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

const bad = (msg: string) => new UapiError(IPC_ERROR.INVALID, msg);

function hexKey(v: string, key: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(v)) throw bad(`${key}: want 64 hex characters`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

function uint(v: string, key: string, max: number): number {
  if (!/^\d+$/.test(v)) throw bad(`${key}: not an unsigned integer`);
  const n = Number(v);
  if (n > max) throw bad(`${key}: ${v} exceeds ${max}`);
  return n;
}

function rangeOf(v: string, key: string, max = 0xffff_ffff): UintRange {
  try {
    return parseRange(v, max);
  } catch (e) {
    throw bad(`${key}: ${(e as Error).message}`);
  }
}

/** Go strconv.ParseBool */
function bool(v: string, key: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw bad(`${key}: not a boolean`);
}

const AWG_RANGE_KEYS: Record<string, keyof AwgParams> = {
  h1: 'h1',
  h2: 'h2',
  h3: 'h3',
  h4: 'h4',
  content_padding_addition: 'contentPaddingAddition',
  rekey_after_time: 'rekeyAfterTime',
  rekey_timeout: 'rekeyTimeout',
  reject_after_time: 'rejectAfterTime',
  keepalive_timeout: 'keepaliveTimeout',
  max_handshake_attempts: 'maxHandshakeAttempts',
};

/**
 * Parses the key=value lines of a set operation (with or without the leading `set=1`,
 * up to the first blank line). Throws UapiError carrying the errno to reply with.
 */
export function parseUapiSet(text: string): DeviceConfig {
  const lines = text.split('\n');
  if (lines[0] === 'set=1') lines.shift();
  const cfg: DeviceConfig = {};
  let awg: NonNullable<DeviceConfig['awg']> | null = null;
  let iSlots: Array<string | null | undefined> | null = null;
  let peer: PeerConfig | null = null;
  const peers: PeerConfig[] = [];
  for (const raw of lines) {
    if (raw === '') break;
    const eq = raw.indexOf('=');
    if (eq < 0) throw new UapiError(IPC_ERROR.PROTOCOL, `line without "=": ${JSON.stringify(raw)}`);
    const key = raw.slice(0, eq);
    const value = raw.slice(eq + 1);
    // the framing carries no control character (the emitter, uapi-text.ts, refuses them):
    // a `\r` or `\0` here is a request built by something else, refused whole
    if (!UAPI_KEY.test(key) || UAPI_CONTROL.test(value))
      throw new UapiError(IPC_ERROR.PROTOCOL, `malformed line ${JSON.stringify(raw)}`);
    if (key === 'public_key') {
      peer = { publicKey: hexKey(value, key) };
      peers.push(peer);
      continue;
    }
    if (!peer) {
      awg ??= {};
      switch (key) {
        case 'private_key': {
          const k = hexKey(value, key);
          cfg.privateKey = isZeroKey(k) ? null : k;
          break;
        }
        case 'listen_port':
          cfg.listenPort = uint(value, key, 65535);
          break;
        case 'fwmark':
          cfg.fwmark = uint(value, key, 0xffff_ffff);
          break;
        case 'replace_peers':
          if (value !== 'true') throw bad('replace_peers: only "true" is accepted');
          cfg.replacePeers = true;
          break;
        case 'jc':
        case 'jmin':
        case 'jmax':
          awg[key] = uint(value, key, 0xffff_ffff);
          break;
        case 's1':
        case 's2':
        case 's3':
        case 's4':
          awg[key] = uint(value, key, 0xffff);
          break;
        case 'i1':
        case 'i2':
        case 'i3':
        case 'i4':
        case 'i5':
          iSlots ??= [undefined, undefined, undefined, undefined, undefined];
          iSlots[Number(key[1]) - 1] = value === '' ? null : value;
          break;
        case 'header_protection_key': {
          const k = hexKey(value, key);
          awg.headerProtectionKey = isZeroKey(k) ? null : k;
          break;
        }
        case 'random_trailers':
          awg.randomTrailers = bool(value, key);
          break;
        case 'disable_cookies':
          awg.disableCookies = bool(value, key);
          break;
        default: {
          // own keys only: `toString=5` or `__proto__=…` must not find Object.prototype
          const f = Object.hasOwn(AWG_RANGE_KEYS, key) ? AWG_RANGE_KEYS[key] : undefined;
          if (!f) throw bad(`unknown device key ${key}`);
          (awg as Record<string, unknown>)[f] = rangeOf(
            value,
            key,
            key.startsWith('h') ? 0xffff_ffff : 0xffff_ffff,
          );
        }
      }
      continue;
    }
    switch (key) {
      case 'remove':
        if (value !== 'true') throw bad('remove: only "true" is accepted');
        peer.remove = true;
        break;
      case 'update_only':
        if (value !== 'true') throw bad('update_only: only "true" is accepted');
        peer.updateOnly = true;
        break;
      case 'preshared_key': {
        const k = hexKey(value, key);
        peer.presharedKey = isZeroKey(k) ? null : k;
        break;
      }
      case 'endpoint': {
        const hp = splitHostPort(value);
        // extension: a DNS name is accepted (the device resolves and re-resolves it);
        // wireguard-go takes numeric endpoints only and `wg` resolves before sending.
        if (!hp || (!isIP(hp.host) && !HOSTNAME.test(hp.host)))
          throw bad(`endpoint: want ip:port, [ip6]:port or host:port, got ${value}`);
        peer.endpoint = value;
        break;
      }
      case 'persistent_keepalive_interval': {
        const r = rangeOf(value, key, 0xffff);
        peer.persistentKeepalive = r;
        break;
      }
      case 'replace_allowed_ips':
        if (value !== 'true') throw bad('replace_allowed_ips: only "true" is accepted');
        peer.replaceAllowedIps = true;
        break;
      case 'allowed_ip':
        (peer.allowedIps ??= []).push(value);
        break;
      case 'protocol_version':
        if (value !== '1') throw bad('protocol_version: only 1 is supported');
        break;
      default:
        throw bad(`unknown peer key ${key}`);
    }
  }
  if (iSlots) {
    (awg ??= {}).i = iSlots;
  }
  if (awg && Object.keys(awg).length) cfg.awg = awg;
  if (peers.length) cfg.peers = peers;
  return cfg;
}

export type UapiFlavor = 'wireguard' | 'amneziawg' | 'auto';

function awgIsDefault(a: AwgParams): boolean {
  const d = defaultAwgParams();
  const same = (x: UintRange, y: UintRange) => x.lo === y.lo && x.hi === y.hi;
  return (
    a.jc === d.jc &&
    a.jmin === d.jmin &&
    a.jmax === d.jmax &&
    a.s1 === 0 &&
    a.s2 === 0 &&
    a.s3 === 0 &&
    a.s4 === 0 &&
    same(a.h1, d.h1) &&
    same(a.h2, d.h2) &&
    same(a.h3, d.h3) &&
    same(a.h4, d.h4) &&
    a.i.every((x) => x === null) &&
    (!a.headerProtectionKey || isZeroKey(a.headerProtectionKey)) &&
    (Object.values(AWG_RANGE_KEYS).slice(4) as (keyof AwgParams)[]).every((k) =>
      isZeroRange(a[k] as UintRange),
    ) &&
    !a.randomTrailers &&
    !a.disableCookies
  );
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * A complete `get=1` response, ending in `errno=0` and a blank line. `auto` prints the
 * AmneziaWG block only when some AWG parameter differs from its default or a peer has a
 * keepalive range, so a plain WireGuard device reads exactly like wireguard-go.
 */
export function serializeUapiGet(s: DeviceSnapshot, flavor: UapiFlavor = 'auto'): string {
  const out: UapiPair[] = [];
  if (s.privateKey) out.push(['private_key', hex(s.privateKey)]);
  if (s.listenPort) out.push(['listen_port', s.listenPort]);
  if (s.fwmark) out.push(['fwmark', s.fwmark]);
  // a keepalive range (AWG 3) is AmneziaWG output too: wg(8) could not read "25-35"
  const awgMode =
    flavor === 'amneziawg' ||
    (flavor === 'auto' &&
      (!awgIsDefault(s.awg) ||
        s.peers.some((p) => p.persistentKeepalive.lo !== p.persistentKeepalive.hi)));
  if (awgMode) {
    const a = s.awg;
    for (const k of ['jc', 'jmin', 'jmax', 's1', 's2', 's3', 's4'] as const)
      if (a[k]) out.push([k, a[k]]);
    for (const k of ['h1', 'h2', 'h3', 'h4'] as const)
      if (!isZeroRange(a[k])) out.push([k, formatRange(a[k])]);
    a.i.forEach((spec, idx) => spec !== null && out.push([`i${idx + 1}`, spec]));
    if (a.headerProtectionKey && !isZeroKey(a.headerProtectionKey))
      out.push(['header_protection_key', hex(a.headerProtectionKey)]);
    for (const [key, f] of Object.entries(AWG_RANGE_KEYS).slice(4)) {
      const r = a[f] as UintRange;
      if (!isZeroRange(r)) out.push([key, formatRange(r)]);
    }
    out.push(
      ['random_trailers', a.randomTrailers ? 1 : 0],
      ['disable_cookies', a.disableCookies ? 1 : 0],
    );
  }
  for (const p of s.peers) {
    out.push(['public_key', hex(p.publicKey)]);
    out.push(['preshared_key', p.presharedKey ? hex(p.presharedKey) : '0'.repeat(64)]);
    out.push(['protocol_version', 1]);
    if (p.endpoint) out.push(['endpoint', formatEndpoint(p.endpoint)]);
    const ms = p.lastHandshakeTime;
    out.push(
      ['last_handshake_time_sec', Math.floor(ms / 1000)],
      ['last_handshake_time_nsec', Math.round((ms % 1000) * 1e6)],
    );
    out.push(['tx_bytes', p.txBytes], ['rx_bytes', p.rxBytes]);
    if (awgMode) {
      if (!isZeroRange(p.persistentKeepalive))
        out.push(['persistent_keepalive_interval', formatRange(p.persistentKeepalive)]);
    } else out.push(['persistent_keepalive_interval', p.persistentKeepalive.lo]);
    for (const a of p.allowedIps) out.push(['allowed_ip', a]);
  }
  return uapiReply(out);
}
