/**
 * A test-side encoder of AmneziaVPN `vpn://` keys, written apart from src/ (export-vpn.ts)
 * so that each checks the other. It makes keys as the AmneziaVPN apps do for a connection
 * shared from a self-hosted server: the wg-quick text from the server's template (DNS left
 * as `$PRIMARY_DNS, $SECONDARY_DNS`, filled from dns1/dns2 when the app connects), the same
 * values as separate last_config fields (the apps' desktop default MTU 1376 in `mtu`),
 * QJsonDocument's serialization (keys sorted, 4-space indent or compact), Qt's qCompress
 * (4-byte big-endian length + zlib) and base64url without padding.
 */
import { deflateSync } from 'node:zlib';

export type J = string | number | boolean | null | J[] | { [k: string]: J };

/** QJsonDocument::toJson: Indented (the default) or Compact. */
export function qtToJson(v: J, compact = false): string {
  const out: string[] = [];
  const emit = (x: J, depth: number): void => {
    if (x === null) out.push('null');
    else if (typeof x === 'string') out.push(JSON.stringify(x));
    else if (typeof x === 'number' || typeof x === 'boolean') out.push(String(x));
    else if (Array.isArray(x)) {
      out.push(compact ? '[' : '[\n');
      x.forEach((e, i) => {
        if (!compact) out.push('    '.repeat(depth + 1));
        emit(e, depth + 1);
        if (i < x.length - 1) out.push(compact ? ',' : ',\n');
        else if (!compact) out.push('\n');
      });
      if (!compact) out.push('    '.repeat(depth));
      out.push(']');
    } else {
      const keys = Object.keys(x).sort();
      out.push(compact ? '{' : '{\n');
      keys.forEach((k, i) => {
        if (!compact) out.push('    '.repeat(depth + 1));
        out.push(JSON.stringify(k), compact ? ':' : ': ');
        emit(x[k]!, depth + 1);
        if (i < keys.length - 1) out.push(compact ? ',' : ',\n');
        else if (!compact) out.push('\n');
      });
      if (!compact) out.push('    '.repeat(depth));
      out.push('}');
    }
  };
  emit(v, 0);
  return out.join('') + (compact ? '' : '\n');
}

export interface PackOptions {
  /** the length header (default: the real size) */
  header?: number;
  level?: number;
  /** keep base64 `=` padding */
  padding?: boolean;
  /** leave out `vpn://` */
  bare?: boolean;
}

/** qCompress + base64url + `vpn://`. */
export function packKey(text: string | Buffer, o: PackOptions = {}): string {
  const raw = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const head = Buffer.alloc(4);
  head.writeUInt32BE(o.header ?? raw.length, 0);
  const body = Buffer.concat([head, deflateSync(raw, { level: o.level ?? 8 })]).toString('base64');
  let s = body.replace(/\+/g, '-').replace(/\//g, '_');
  if (!o.padding) s = s.replace(/=+$/, '');
  return (o.bare ? '' : 'vpn://') + s;
}

/** base64url of the bytes alone (no qCompress): the apps' fallback form */
export const base64Key = (text: string): string =>
  'vpn://' + Buffer.from(text, 'utf8').toString('base64url');

export type Generation = '1.0' | '2.0' | '3.1' | 'wg';

export interface ClientSpec {
  gen: Generation;
  privateKey: string;
  publicKey: string;
  serverPublicKey: string;
  psk?: string;
  clientIp: string;
  host: string;
  port: number;
  dns1?: string;
  dns2?: string;
  description?: string;
  allowedIPs?: string[];
  /** AmneziaWG values by their wg-quick names (Jc, H1, I1, HeaderProtectionKey, …) */
  awg?: Record<string, string>;
  /** leave the wg-quick text out of last_config (fields only) */
  noText?: boolean;
  /** change a separate field after the text was made (a key whose fields disagree) */
  fieldOverrides?: Record<string, J>;
  /** root-level extras (SSH login of a "full access" key, gateway fields, …) */
  extra?: Record<string, J>;
}

const CONTAINER: Record<Generation, string> = {
  '1.0': 'amnezia-awg',
  '2.0': 'amnezia-awg2',
  '3.1': 'amnezia-awg2',
  wg: 'amnezia-wireguard',
};

/** the wg-quick text of the server's client template, as the app fills it */
export function clientText(c: ClientSpec): string {
  const l = [
    '[Interface]',
    `Address = ${c.clientIp}/32`,
    'DNS = $PRIMARY_DNS, $SECONDARY_DNS',
    `PrivateKey = ${c.privateKey}`,
    ...Object.entries(c.awg ?? {}).map(([k, v]) => `${k} = ${v}`),
    '',
    '[Peer]',
    `PublicKey = ${c.serverPublicKey}`,
    ...(c.psk ? [`PresharedKey = ${c.psk}`] : []),
    `AllowedIPs = ${(c.allowedIPs ?? ['0.0.0.0/0', '::/0']).join(', ')}`,
    `Endpoint = ${c.host}:${c.port}`,
    'PersistentKeepalive = 25',
  ];
  return l.join('\n') + '\n';
}

/** One container object ({container, awg|wireguard}) as the app writes it. */
export function containerOf(c: ClientSpec): Record<string, J> {
  const awg = c.gen === 'wg' ? {} : (c.awg ?? {});
  const last: Record<string, J> = {
    ...awg,
    allowed_ips: c.allowedIPs ?? ['0.0.0.0/0', '::/0'],
    clientId: c.publicKey,
    client_ip: c.clientIp,
    client_priv_key: c.privateKey,
    client_pub_key: c.publicKey,
    hostName: c.host,
    mtu: '1376',
    persistent_keep_alive: '25',
    port: c.port,
    server_pub_key: c.serverPublicKey,
  };
  if (c.psk) last.psk_key = c.psk;
  if (!c.noText) last.config = clientText(c);
  Object.assign(last, c.fieldOverrides ?? {});
  const proto: Record<string, J> = {
    ...awg,
    last_config: qtToJson(last),
    port: String(c.port),
    transport_proto: 'udp',
  };
  if (c.gen === '2.0') proto.protocol_version = '2';
  if (c.gen === '3.1') proto.protocol_version = '3.1';
  return { container: CONTAINER[c.gen], [c.gen === 'wg' ? 'wireguard' : 'awg']: proto };
}

/** The whole document of a shared connection with these containers (the first is default). */
export function documentOf(cs: ClientSpec[]): Record<string, J> {
  const c = cs[0]!;
  const doc: Record<string, J> = {
    containers: cs.map(containerOf),
    defaultContainer: CONTAINER[c.gen],
    description: c.description ?? 'Server 1',
    hostName: c.host,
    ...(c.dns1 !== undefined ? { dns1: c.dns1 } : {}),
    ...(c.dns2 !== undefined ? { dns2: c.dns2 } : {}),
    ...(c.extra ?? {}),
  };
  return doc;
}

/** A key for these containers, as the app shares it. */
export function amneziaKey(cs: ClientSpec[], o: PackOptions = {}): string {
  return packKey(qtToJson(documentOf(cs)), o);
}

/** AmneziaWG parameters of a generation by their wg-quick names (3.1: with this header key) */
export function awgParams(gen: Exclude<Generation, 'wg'>, hpk?: string): Record<string, string> {
  const p = { ...AWG_PARAMS[gen] };
  if (gen === '3.1') {
    if (hpk === undefined) throw new Error('AmneziaWG 3.1 needs a header protection key');
    p.HeaderProtectionKey = hpk;
  }
  return p;
}

const AWG_PARAMS: Record<Exclude<Generation, 'wg'>, Record<string, string>> = {
  '1.0': {
    Jc: '4',
    Jmin: '40',
    Jmax: '70',
    S1: '15',
    S2: '18',
    H1: '1020325451',
    H2: '3288052141',
    H3: '1766607858',
    H4: '2528465083',
  },
  '2.0': {
    Jc: '4',
    Jmin: '40',
    Jmax: '70',
    S1: '15',
    S2: '18',
    S3: '20',
    S4: '23',
    H1: '471800590-471800690',
    H2: '1246894907-1246895000',
    H3: '923637689-923637690',
    H4: '1769581055-1869581055',
    I1: '<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>',
    I2: '',
    I3: '',
    I4: '',
    I5: '',
  },
  '3.1': {
    Jc: '4',
    Jmin: '40',
    Jmax: '70',
    S1: '15',
    S2: '18',
    S3: '20',
    S4: '23',
    H1: '471800590-471800690',
    H2: '1246894907-1246895000',
    H3: '923637689-923637690',
    H4: '1769581055-1869581055',
    I1: '<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>',
    I2: '',
    I3: '',
    I4: '',
    I5: '',
    HeaderProtectionKey: '',
    RandomTrailers: 'on',
    ContentPaddingAddition: '8-32',
  },
};
