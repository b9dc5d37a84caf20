/**
 * The meaning of an AmneziaVPN config document (what a `vpn://` key holds, vpn-key.ts):
 * which containers it has, which of them are WireGuard or AmneziaWG, and for each the
 * wg-quick text to import. A container's `last_config` is a JSON string with a `config`
 * wg-quick text (`DNS = $PRIMARY_DNS, $SECONDARY_DNS`, filled from the document's
 * dns1/dns2 as the apps do) and the same values as separate fields (client_priv_key,
 * client_ip, server_pub_key, psk_key, hostName, port, mtu, allowed_ips,
 * persistent_keep_alive, Jc … DisableCookies). The text wins; a field that says otherwise is
 * reported by name. Without a text the fields make one. Keys that need Amnezia's gateway
 * (api_key, auth_data, api_config, config_version 1/2, a `$WIREGUARD_CLIENT_PRIVATE_KEY`
 * placeholder) are refused; the server's SSH login of a "full access" key is named, never
 * copied. Pure; throws only VpnKeyError, whose messages quote no secret.
 */
import { parseIni, type IniSection } from '../ini.js';
import { VpnKeyError } from './vpn-key.js';

/** Container name → the protocol object's key and the AmneziaWG generation it speaks. */
export const VPN_CONTAINERS = {
  'amnezia-awg': { proto: 'awg', label: 'AmneziaWG 1.x' },
  'amnezia-awg2': { proto: 'awg', label: 'AmneziaWG 2.0/3.x' },
  'amnezia-wireguard': { proto: 'wireguard', label: 'WireGuard' },
} as const;
export type VpnContainerName = keyof typeof VPN_CONTAINERS;

/** The AmneziaWG fields of last_config, by the wg-quick key they equal (the apps' own list). */
export const AWG_FIELDS = [
  'Jc',
  'Jmin',
  'Jmax',
  'S1',
  'S2',
  'S3',
  'S4',
  'H1',
  'H2',
  'H3',
  'H4',
  'I1',
  'I2',
  'I3',
  'I4',
  'I5',
  'HeaderProtectionKey',
  'ContentPaddingAddition',
  'RekeyAfterTime',
  'RekeyTimeout',
  'RejectAfterTime',
  'KeepaliveTimeout',
  'MaxHandshakeAttempts',
  'RandomTrailers',
  'DisableCookies',
] as const;
const SECRET_FIELDS = new Set(['client_priv_key', 'psk_key', 'HeaderProtectionKey']);

/** the apps' DNS when the document names none (their settings' defaults) */
export const AMNEZIA_DEFAULT_DNS = ['1.1.1.1', '1.0.0.1'] as const;

/** A finding about the document (not located in a wg-quick text). */
export interface DocNote {
  /** JSON path, e.g. `containers[0].awg.last_config.client_ip` */
  path: string;
  message: string;
  severity: 'warning' | 'note';
}

export interface VpnContainer {
  /** index in the document's containers */
  index: number;
  name: string;
  /** true for the document's defaultContainer */
  isDefault: boolean;
  /** the wg-quick text to import, or why there is none */
  ini?: string;
  /** the text came from the separate fields (no `config` in last_config) */
  synthesized?: boolean;
  skip?: string;
  notes: DocNote[];
}

export interface VpnDoc {
  description?: string;
  hostName?: string;
  containers: VpnContainer[];
  /** document-wide findings (credentials dropped, unknown containers, …) */
  notes: DocNote[];
}

/** fields of a "full access" key: the server's SSH login (root level) */
const CREDENTIAL_FIELDS = ['userName', 'password', 'port', 'sshKey', 'privateKey'];
/** fields of keys served by Amnezia's gateway */
const GATEWAY_FIELDS = ['api_key', 'auth_data', 'api_config', 'api_endpoint'];

const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined;
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;

/** Read the document; see the module comment. */
export function readVpnDoc(doc: Record<string, unknown>): VpnDoc {
  const gateway = GATEWAY_FIELDS.filter((k) => k in doc);
  const version = doc.config_version;
  if (gateway.length > 0 || version === 1 || version === 2 || version === '1' || version === '2')
    throw new VpnKeyError(
      `this is a key of Amnezia's VPN service (${[...gateway, ...(version !== undefined ? [`config_version ${String(version)}`] : [])].join(', ')}): it holds an access token, not a tunnel; the tunnel's keys and parameters are issued by Amnezia's gateway when the app connects, so the key cannot work offline. Use a key of a self-hosted server, or the service's own .conf export`,
    );
  const notes: DocNote[] = [];
  const creds = CREDENTIAL_FIELDS.filter((k) => k in doc);
  if (creds.length > 0)
    notes.push({
      path: '',
      severity: 'note',
      message: `the key also holds the server's SSH login (${creds.join(', ')}): a "full access" key. awg needs only the tunnel; the login was dropped and is written nowhere`,
    });
  const list = doc.containers;
  if (!Array.isArray(list) || list.length === 0)
    throw new VpnKeyError('the key holds no containers: nothing to import');
  const description = str(doc.description);
  const hostName = str(doc.hostName);
  const defaultName = str(doc.defaultContainer);
  const dns = [str(doc.dns1), str(doc.dns2)];
  const out: VpnContainer[] = [];
  list.forEach((c, index) => {
    const o = obj(c);
    const name = o ? str(o.container) : undefined;
    if (!o || name === undefined) {
      notes.push({
        path: `containers[${index}]`,
        severity: 'warning',
        message: 'not a container object: skipped',
      });
      return;
    }
    const known = (VPN_CONTAINERS as Record<string, { proto: string; label: string }>)[name];
    const entry: VpnContainer = {
      index,
      name,
      isDefault: name === defaultName,
      notes: [],
    };
    out.push(entry);
    if (!known) {
      entry.skip = `container "${safeName(name)}" is not WireGuard or AmneziaWG (awg imports amnezia-awg, amnezia-awg2 and amnezia-wireguard)`;
      return;
    }
    const base = `containers[${index}].${known.proto}`;
    const proto = obj(o[known.proto]);
    if (!proto) {
      entry.skip = `container ${name} has no "${known.proto}" object`;
      return;
    }
    const lcText = proto.last_config;
    if (typeof lcText !== 'string' || lcText.trim() === '') {
      entry.skip = `container ${name} has no client config (no last_config${creds.length ? ': a "full access" key carries the server login instead, and AmneziaVPN makes a client over SSH; awg does not log in to servers' : ''})`;
      return;
    }
    let lc: Record<string, unknown> | undefined;
    try {
      lc = obj(JSON.parse(lcText));
    } catch {
      lc = undefined;
    }
    if (!lc) {
      entry.skip = `container ${name}: its last_config is not a JSON object`;
      return;
    }
    if (lcText.includes('$WIREGUARD_CLIENT_PRIVATE_KEY'))
      throw new VpnKeyError(
        `container ${name} holds a template ($WIREGUARD_CLIENT_PRIVATE_KEY) that Amnezia's gateway fills in when the app connects: the key cannot work offline`,
      );
    const awgFields = known.proto === 'awg' ? awgValues(lc, proto) : new Map<string, string>();
    const at = `${base}.last_config`;
    const config = str(lc.config);
    if (config !== undefined && config.trim() !== '') {
      entry.ini = fillDns(config, dns);
      entry.notes.push(...disagreements(entry.ini, lc, awgFields, at, hostName));
    } else {
      entry.ini = synthesize(lc, awgFields, dns, hostName, proto);
      entry.synthesized = true;
      entry.notes.push({
        path: at,
        severity: 'note',
        message: 'no wg-quick text in last_config: the tunnel was made from its separate fields',
      });
    }
  });
  return {
    ...(description !== undefined ? { description } : {}),
    ...(hostName !== undefined ? { hostName } : {}),
    containers: out,
    notes,
  };
}

/** a container name as it may appear in a message: printable, short */
function safeName(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 40 ? `${t.slice(0, 40)}…` : t;
}

/** the AmneziaWG values: last_config first, then the container's object (as the apps read them) */
function awgValues(
  lc: Record<string, unknown>,
  proto: Record<string, unknown>,
): Map<string, string> {
  const m = new Map<string, string>();
  for (const k of AWG_FIELDS) {
    const v = str(lc[k]) ?? str(proto[k]);
    if (v !== undefined && v.trim() !== '') m.set(k, v.trim());
  }
  return m;
}

/** `$PRIMARY_DNS` / `$SECONDARY_DNS` as the apps fill them (their defaults when absent) */
function fillDns(text: string, dns: (string | undefined)[]): string {
  const d1 = dns[0]?.trim() || AMNEZIA_DEFAULT_DNS[0];
  const d2 = dns[1]?.trim() ?? (dns[0] === undefined ? AMNEZIA_DEFAULT_DNS[1] : '');
  let t = text.replace(/\r\n/g, '\n');
  if (d2 === '') t = t.replace(/\s*,\s*\$SECONDARY_DNS/g, '');
  return t.replace(/\$PRIMARY_DNS/g, d1).replace(/\$SECONDARY_DNS/g, d2);
}

/** a value compared as the INI reader sees it: whitespace removed */
const norm = (s: string): string => s.replace(/\s+/g, '');
const listSet = (s: string): string => s.split(',').map(norm).filter(Boolean).sort().join(',');

function entryOf(
  sections: IniSection[],
  kind: 'interface' | 'peer',
  key: string,
): string | undefined {
  const s = sections.find((x) => x.kind === kind);
  const vals = s?.entries.filter((e) => e.key.toLowerCase() === key.toLowerCase()) ?? [];
  return vals.length ? vals.map((e) => e.value).join(',') : undefined;
}

/** the separate fields that say something else than the text (which wins) */
function disagreements(
  ini: string,
  lc: Record<string, unknown>,
  awg: Map<string, string>,
  at: string,
  rootHost: string | undefined,
): DocNote[] {
  const { doc } = parseIni(ini, 'last_config');
  const s = doc.sections;
  const out: DocNote[] = [];
  const differ = (field: string, key: string, kind: 'interface' | 'peer', a: string, b: string) =>
    out.push({
      path: `${at}.${field}`,
      severity: 'warning',
      message: SECRET_FIELDS.has(field)
        ? `${field} is not the config text's ${key}; the config text is taken`
        : `${field} = "${a}" but the config text has ${key} = ${b}; the config text is taken`,
    });
  const missing = (field: string, key: string, a: string) =>
    out.push({
      path: `${at}.${field}`,
      severity: 'warning',
      message: SECRET_FIELDS.has(field)
        ? `${field} is set but the config text has no ${key}; the config text is taken`
        : `${field} = "${a}" but the config text has no ${key}; the config text is taken`,
    });
  const check = (
    field: string,
    key: string,
    kind: 'interface' | 'peer',
    eq: (a: string, b: string) => boolean = (a, b) => norm(a) === norm(b),
    reportMissing = true,
  ) => {
    const a = str(lc[field]);
    if (a === undefined || a.trim() === '') return;
    const b = entryOf(s, kind, key);
    if (b === undefined) {
      if (reportMissing) missing(field, key, a);
    } else if (!eq(a, b)) differ(field, key, kind, a, b);
  };
  check('client_priv_key', 'PrivateKey', 'interface');
  check('client_ip', 'Address', 'interface', (a, b) =>
    b
      .split(',')
      .map((x) => norm(x).replace(/\/\d+$/, ''))
      .includes(norm(a).replace(/\/\d+$/, '')),
  );
  check('server_pub_key', 'PublicKey', 'peer');
  check('psk_key', 'PresharedKey', 'peer');
  // no MTU in the text: the apps' own default in the field; awg's default applies
  check('mtu', 'MTU', 'interface', undefined, false);
  check('persistent_keep_alive', 'PersistentKeepalive', 'peer', undefined, false);
  const allowed = lc.allowed_ips;
  if (Array.isArray(allowed) && allowed.every((x) => typeof x === 'string') && allowed.length) {
    const a = (allowed as string[]).join(', ');
    const b = entryOf(s, 'peer', 'AllowedIPs');
    if (b !== undefined && listSet(a) !== listSet(b))
      differ('allowed_ips', 'AllowedIPs', 'peer', a, b);
  }
  const endpoint = entryOf(s, 'peer', 'Endpoint');
  const host = str(lc.hostName) ?? rootHost;
  const port = str(lc.port);
  if (endpoint !== undefined && host !== undefined && port !== undefined) {
    const want = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    if (norm(want) !== norm(endpoint))
      out.push({
        path: `${at}.hostName`,
        severity: 'warning',
        message: `hostName:port = "${want}" but the config text has Endpoint = ${endpoint}; the config text is taken`,
      });
  }
  for (const k of AWG_FIELDS) {
    const a = str(lc[k]);
    if (a === undefined || a.trim() === '' || awg.get(k) === undefined) continue;
    check(k, k, 'interface');
  }
  return out;
}

/** a wg-quick text from the separate fields (no `config` in last_config) */
function synthesize(
  lc: Record<string, unknown>,
  awg: Map<string, string>,
  dns: (string | undefined)[],
  rootHost: string | undefined,
  proto: Record<string, unknown>,
): string {
  const one = (v: string | undefined): string | undefined =>
    v === undefined ? undefined : v.replace(/[\r\n]/g, ' ').trim() || undefined;
  const lines = ['[Interface]'];
  const kv = (k: string, v: string | undefined) => {
    const x = one(v);
    if (x !== undefined) lines.push(`${k} = ${x}`);
  };
  kv('PrivateKey', str(lc.client_priv_key));
  const ip = one(str(lc.client_ip));
  kv(
    'Address',
    ip === undefined ? undefined : ip.includes('/') ? ip : `${ip}/${ip.includes(':') ? 128 : 32}`,
  );
  const d1 = one(dns[0]) ?? AMNEZIA_DEFAULT_DNS[0];
  const d2 = dns[0] === undefined ? AMNEZIA_DEFAULT_DNS[1] : one(dns[1]);
  kv('DNS', d2 ? `${d1}, ${d2}` : d1);
  kv('MTU', str(lc.mtu));
  for (const [k, v] of awg) kv(k, v);
  lines.push('', '[Peer]');
  kv('PublicKey', str(lc.server_pub_key));
  kv('PresharedKey', str(lc.psk_key));
  const allowed = lc.allowed_ips;
  kv(
    'AllowedIPs',
    Array.isArray(allowed) && allowed.length
      ? allowed.filter((x): x is string => typeof x === 'string').join(', ')
      : '0.0.0.0/0, ::/0',
  );
  const host = one(str(lc.hostName) ?? rootHost);
  const port = one(str(lc.port) ?? str(proto.port));
  if (host !== undefined && port !== undefined)
    kv('Endpoint', host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
  kv('PersistentKeepalive', str(lc.persistent_keep_alive));
  return lines.join('\n') + '\n';
}
