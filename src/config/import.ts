/**
 * `awg import`: wg-quick / awg-quick INI → the YAML config model. Pure: no I/O.
 *
 * Contract: never throws; every problem comes back as a located issue. When no issue has
 * severity `error`, `yaml` validates with `Config.safeParse(YAML.parse(yaml))`. With
 * keyMode `file`, secrets become `{file}` references and their material is returned in
 * `secretFiles` for the caller to write (mode 0600) next to the YAML.
 */
import ipaddr from '../util/ipaddr.js';
import { Document, isMap, isScalar, isSeq, parse as parseYaml } from 'yaml';
import type { Node as YamlNode, Pair, Scalar } from 'yaml';
import type * as z from 'zod';
import type { Issue } from '../errors.js';
import {
  AwgObfuscation,
  Config,
  Endpoint,
  ENDPOINT_RE,
  MAX_TUNNEL_NAME,
  RESERVED_TARGETS,
  TUNNEL_NAME_RE,
  WgKey,
  WireguardTunnel,
} from './schema.js';
import type { ConfigInput } from './schema.js';
import { parseCidr } from './cidr.js';
import { parseIni, splitList } from './ini.js';
import { defaultMtu, fittingMtu, PATH_MTU, TRANSPORT_OVERHEAD } from './mtu.js';
import { checkSemantics } from './semantic.js';
import { parseTagString } from './tags.js';
import type { IniEntry, IniSection } from './ini.js';

export const SCHEMA_URL = 'https://unpkg.com/awg/schema/config.schema.json';

export interface ImportOptions {
  /** source file name, used in issues and to derive the tunnel name */
  file: string;
  name?: string;
  /** force the tunnel type; default: amneziawg when any AmneziaWG key is present */
  type?: 'wireguard' | 'amneziawg';
  keyMode?: 'inline' | 'file';
  schemaUrl?: string;
}

/** Secret material to write next to the YAML; `file` is the path the YAML refers to. */
export interface SecretFile {
  file: string;
  content: string;
}

export interface ImportResult {
  yaml: string;
  config: ConfigInput;
  issues: Issue[];
  secretFiles: SecretFile[];
  tunnelName: string;
  /** no issue with severity error */
  ok: boolean;
}

type Path = (string | number)[];
interface Loc {
  line: number;
  col: number;
}
interface Note {
  path: Path;
  before: string[];
  trailing?: string;
}

const AWG_SIMPLE = ['jc', 'jmin', 'jmax', 's1', 's2', 's3', 's4'] as const;
const AWG_H = ['h1', 'h2', 'h3', 'h4'] as const;
const AWG_I = ['i1', 'i2', 'i3', 'i4', 'i5'] as const;
/** AWG 3.x ranges (awg(8) `u16_range_from_string`) and switches, INI key → model field. */
const AWG3_RANGES = {
  contentpaddingaddition: 'contentPaddingAddition',
  rekeyaftertime: 'rekeyAfterTime',
  rekeytimeout: 'rekeyTimeout',
  rejectaftertime: 'rejectAfterTime',
  keepalivetimeout: 'keepaliveTimeout',
  maxhandshakeattempts: 'maxHandshakeAttempts',
} as const;
const AWG3_BOOLS = { randomtrailers: 'randomTrailers', disablecookies: 'disableCookies' } as const;
const AWG3_FIELDS = [
  'headerProtectionKey',
  ...Object.values(AWG3_RANGES),
  ...Object.values(AWG3_BOOLS),
] as const;
const AWG_KEYS = new Set<string>([
  ...AWG_SIMPLE,
  ...AWG_H,
  ...AWG_I,
  'headerprotectionkey',
  ...Object.keys(AWG3_RANGES),
  ...Object.keys(AWG3_BOOLS),
]);

/** AmneziaWG keys the model cannot hold, with what they are. */
const UNSUPPORTED_INTERFACE: Record<string, string> = {
  j1: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  j2: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  j3: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  itime: 'AmneziaWG 1.5 I-packet interval, removed in 2.0',
};
const UNSUPPORTED_PEER: Record<string, string> = {
  advancedsecurity: 'an AmneziaWG kernel-module flag',
};

const HOOKS =
  'awg sets up routes, DNS and firewall itself and runs no hooks; run such commands another way if still needed';

/** wg-quick keys that awg replaces with its own routing and hooks. */
const NOT_IMPORTED: Record<string, string> = {
  fwmark: 'awg marks tunnel traffic itself, inside routing.fwmarkMask',
  table:
    'awg allocates a routing table per tunnel from routing.tableBase; per-app rules decide what is routed',
  preup: HOOKS,
  postup: HOOKS,
  predown: HOOKS,
  postdown: HOOKS,
  saveconfig: 'awg never rewrites its config',
};

const INTERFACE_KEYS = new Set([
  'privatekey',
  'address',
  'dns',
  'mtu',
  'listenport',
  ...AWG_KEYS,
  ...Object.keys(NOT_IMPORTED),
]);
const PEER_KEYS = new Set([
  'publickey',
  'presharedkey',
  'allowedips',
  'endpoint',
  'persistentkeepalive',
]);
const REPEATABLE = new Set([
  'address',
  'dns',
  'allowedips',
  'preup',
  'postup',
  'predown',
  'postdown',
]);

export function pathString(p: Path): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`;
  return s;
}

/** `wg0.conf` → `wg0`; directories and any extension are dropped. */
export function nameFromFile(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? '';
  return base.replace(/\.[^.]*$/, '');
}

/**
 * A valid tunnel name close to `s`: lower-cased, runs of other characters turned into "-",
 * leading separators dropped, cut to MAX_TUNNEL_NAME, trailing separators dropped.
 * Deterministic; undefined when nothing valid remains (empty or reserved).
 */
export function suggestName(s: string): string | undefined {
  const n = s
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, MAX_TUNNEL_NAME)
    .replace(/[-_]+$/, '');
  return tunnelNameProblem(n) === undefined ? n : undefined;
}

export function tunnelNameProblem(n: string): string | undefined {
  if (n === '') return 'it is empty';
  if (n.length > MAX_TUNNEL_NAME)
    return `at most ${MAX_TUNNEL_NAME} characters, as the link awg-<name> has 15 at most`;
  if (!TUNNEL_NAME_RE.test(n))
    return 'lower-case letters, digits, "_" and "-", starting with a letter or digit';
  if ((RESERVED_TARGETS as readonly string[]).includes(n)) return `"${n}" is reserved`;
  return undefined;
}

function zodMessage(r: z.ZodSafeParseResult<unknown>): string | undefined {
  return r.success ? undefined : (r.error.issues[0]?.message ?? 'invalid');
}

/**
 * Check one Address / DNS / AllowedIPs item as wg(8) reads it: an IPv4 dotted quad or an
 * IPv6 address, optional /prefix. Keeps the text as written (host bits too); with
 * `fillPrefix` a bare address gets /32 or /128. A string is the reason it was refused.
 */
function parseIniAddress(
  s: string,
  fillPrefix: boolean,
): { value: string; v6: boolean; prefix: number } | string {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const v6 = addr.includes(':');
  const ok = v6 ? ipaddr.IPv6.isValid(addr) : ipaddr.IPv4.isValidFourPartDecimal(addr);
  if (!ok) return `"${s}" is not an IPv4 or IPv6 address`;
  const max = v6 ? 128 : 32;
  if (slash < 0) return { value: fillPrefix ? `${addr}/${max}` : addr, v6, prefix: max };
  const p = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `"${s}" has a bad prefix length (0-${max})`;
  return { value: s, v6, prefix: Number(p) };
}

function parseUint(s: string, max: number): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= max ? n : undefined;
}

/** Where a prefix is claimed: the AllowedIPs item and its [Peer] header. */
interface Claim {
  line: number;
  col: number;
  value: string;
  peerLine: number;
}

/**
 * WireGuard's allowed-IPs table maps each prefix (host bits cleared) to one peer; setting
 * a prefix that is already there moves it to the new peer (wireguard-go `insert` on an
 * exact node, the kernel's `add` likewise), and wg-quick sets peers in file order. So the
 * last [Peer] that lists a prefix gets it. Returns each earlier claim, by `line:col`, with
 * the claim that wins. Claims within one peer do not compete.
 */
export function laterClaims(peers: IniSection[]): Map<string, Claim> {
  const claims: (Claim & { key: string; peer: number })[] = [];
  peers.forEach((s, peer) => {
    for (const e of s.entries) {
      if (e.lower !== 'allowedips') continue;
      for (const item of splitList(e)) {
        const written = parseIniAddress(item.value, true);
        const c = typeof written === 'string' ? undefined : parseCidr(written.value);
        if (typeof written === 'string' || c === undefined) continue;
        const key = `${c.family}:${c.network}/${c.len}`;
        claims.push({
          key,
          peer,
          line: e.line,
          col: item.col,
          value: written.value,
          peerLine: s.line,
        });
      }
    }
  });
  const last = new Map<string, Claim & { peer: number }>();
  for (const c of claims) last.set(c.key, c);
  const lost = new Map<string, Claim>();
  for (const c of claims) {
    const w = last.get(c.key)!;
    if (w.peer !== c.peer)
      lost.set(`${c.line}:${c.col}`, {
        line: w.line,
        col: w.col,
        value: w.value,
        peerLine: w.peerLine,
      });
  }
  return lost;
}

class Importer {
  readonly issues: Issue[] = [];
  readonly locs = new Map<string, Loc>();
  readonly notes: Note[] = [];
  readonly secretFiles: SecretFile[] = [];
  readonly tunnel: Record<string, unknown> = {};
  readonly peers: Record<string, unknown>[] = [];
  readonly obfuscation: Record<string, unknown> = {};
  awgKeys: IniEntry[] = [];
  /** comments waiting for the next imported key of the section */
  pending: string[] = [];
  full4 = false;
  full6 = false;
  /** imported AllowedIPs other than /0 */
  splitIPs: string[] = [];
  /** some of splitIPs are IPv6 */
  split6 = false;
  /** the [Interface] Table value, if any */
  table: IniEntry | undefined;
  /** AllowedIPs items that a later peer claims too, by `line:col` (see `laterClaims`) */
  lost = new Map<string, Claim>();

  constructor(
    readonly file: string,
    readonly name: string,
    readonly keyMode: 'inline' | 'file',
  ) {}

  err(
    at: Loc | undefined,
    path: Path,
    message: string,
    severity: Issue['severity'] = 'error',
  ): void {
    const i: Issue = { file: this.file, path: pathString(path), message, severity };
    if (at) {
      i.line = at.line;
      i.col = at.col;
    }
    this.issues.push(i);
  }

  base(): Path {
    return ['tunnels', this.name];
  }

  /** Remember where a config path came from, and carry the entry's comments there. */
  place(path: Path, at: Loc, e?: IniEntry, extra: string[] = []): void {
    this.locs.set(pathString(path), at);
    const before = [...this.pending, ...(e?.comments ?? []), ...extra];
    this.pending = [];
    if (before.length > 0 || e?.trailing !== undefined) {
      const n: Note = { path, before };
      if (e?.trailing !== undefined) n.trailing = e.trailing;
      this.notes.push(n);
    }
  }

  secret(value: string, fileName: string): unknown {
    if (this.keyMode === 'inline') return value;
    this.secretFiles.push({ file: fileName, content: value + '\n' });
    return { file: fileName };
  }

  interface(s: IniSection): void {
    const base = this.base();
    this.locs.set(pathString(base), s);
    const seen = new Map<string, IniEntry>();
    const addresses: string[] = [];
    const dns: string[] = [];
    this.pending = [];
    for (const e of s.entries) {
      const at: Loc = { line: e.line, col: e.col };
      const vat: Loc = { line: e.line, col: e.valueCol };
      if (!this.singular(e, seen, base)) continue;
      if (UNSUPPORTED_INTERFACE[e.lower] !== undefined) {
        this.err(
          at,
          base,
          `${e.key} (${UNSUPPORTED_INTERFACE[e.lower]}) is not supported yet; remove it or keep using awg-quick for this tunnel`,
        );
        continue;
      }
      if (!INTERFACE_KEYS.has(e.lower)) {
        this.unknown(e, base, 'Interface');
        continue;
      }
      const reason = NOT_IMPORTED[e.lower];
      if (e.lower === 'table') this.table = e;
      if (reason !== undefined) {
        const shown = e.value.length > 60 ? e.value.slice(0, 57) + '...' : e.value;
        this.err(at, base, `${e.key} = ${shown} not imported: ${reason}`, 'warning');
        this.pending.push(...e.comments, ` not imported: ${e.key} = ${e.raw}`);
        continue;
      }
      switch (e.lower) {
        case 'privatekey': {
          const bad = zodMessage(WgKey.safeParse(e.value));
          if (bad) this.err(vat, [...base, 'privateKey'], `PrivateKey: ${bad}`);
          else {
            this.tunnel.privateKey = this.secret(e.value, `${this.name}.key`);
            const hint =
              this.keyMode === 'inline'
                ? [' inline secret: keep this file private, or import with --key-file']
                : [];
            this.place([...base, 'privateKey'], at, e, hint);
          }
          break;
        }
        case 'address':
        case 'dns':
          this.list(e, e.lower === 'address' ? addresses : dns, base);
          break;
        case 'mtu':
        case 'listenport': {
          const field = e.lower === 'mtu' ? 'mtu' : 'listenPort';
          const n = parseUint(e.value, 0xffffffff);
          const bad =
            n === undefined
              ? 'must be a decimal number'
              : zodMessage(WireguardTunnel.shape[field].safeParse(n));
          if (field === 'listenPort' && n === 0) break; // 0 = random, the default
          if (bad || n === undefined) this.err(vat, [...base, field], `${e.key}: ${bad}`);
          else {
            this.tunnel[field] = n;
            this.place([...base, field], at, e);
          }
          break;
        }
        default:
          this.awg(e, base);
      }
    }
    if (addresses.length > 0) this.tunnel.addresses = addresses;
    else if (!this.issues.some((i) => i.path.startsWith(pathString([...base, 'addresses']))))
      this.err(
        s,
        [...base, 'addresses'],
        'no Address in [Interface]: awg needs at least one tunnel address',
      );
    if (dns.length > 0) this.tunnel.dns = dns;
    if (!seen.has('privatekey'))
      this.err(s, [...base, 'privateKey'], 'no PrivateKey in [Interface]');
    this.sectionNote(s, base);
  }

  /** Address / DNS lines: comma-separated, repeatable. */
  list(e: IniEntry, into: string[], base: Path): void {
    const field = e.lower === 'address' ? 'addresses' : 'dns';
    if (field === 'addresses' && e.raw === '') {
      this.err({ line: e.line, col: e.valueCol }, [...base, field], 'Address has no value');
      return;
    }
    let first = true;
    for (const item of splitList(e)) {
      const at: Loc = { line: e.line, col: item.col };
      if (field === 'dns' && !/^[0-9./]+$/.test(item.value) && !item.value.includes(':')) {
        this.err(
          at,
          [...base, 'dns'],
          `DNS search domain "${item.value}" not imported: awg has no per-tunnel search domains yet`,
          'warning',
        );
        continue;
      }
      const c = parseIniAddress(item.value, false);
      if (typeof c === 'string') {
        this.err(at, [...base, field, into.length], `${e.key}: ${c}`);
        continue;
      }
      if (field === 'dns' && item.value.includes('/')) {
        this.err(
          at,
          [...base, field, into.length],
          `${e.key}: "${item.value}" must be an address without a prefix`,
        );
        continue;
      }
      const path: Path = into.length === 0 ? [...base, field] : [...base, field, into.length];
      into.push(c.value);
      this.locs.set(pathString([...base, field, into.length - 1]), at);
      if (first) this.place(path, at, e);
      first = false;
    }
  }

  awg(e: IniEntry, base: Path): void {
    this.awgKeys.push(e);
    if (e.lower === 'headerprotectionkey' || e.lower in AWG3_RANGES || e.lower in AWG3_BOOLS)
      return this.awg3(e, base);
    const field = e.lower as keyof typeof AwgObfuscation.shape;
    const path: Path = [...base, 'obfuscation', field];
    const vat: Loc = { line: e.line, col: e.valueCol };
    let v: unknown;
    if ((AWG_SIMPLE as readonly string[]).includes(field)) {
      const n = parseUint(e.value, 0xffffffff);
      const bad =
        n === undefined
          ? 'must be a decimal number'
          : zodMessage(AwgObfuscation.shape[field].safeParse(n));
      if (bad) return this.err(vat, path, `${e.key}: ${bad}`);
      v = n;
    } else if ((AWG_H as readonly string[]).includes(field)) {
      const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(e.value);
      const a = m ? Number(m[1]) : NaN;
      const b = m?.[2] !== undefined ? Number(m[2]) : a;
      if (!m || a > 0xffffffff || b > 0xffffffff)
        return this.err(
          vat,
          path,
          `${e.key} must be a uint32 or a range "MIN-MAX", got "${e.value}"`,
        );
      if (b < a) return this.err(vat, path, `${e.key} range "${e.value}" has MAX < MIN`);
      v = m[2] === undefined ? a : `${a}-${b}`;
    } else {
      if (e.value === '') return; // an empty I-value leaves the slot unset
      if (!this.tags(e, path)) return;
      v = e.value;
    }
    this.obfuscation[field] = v;
    this.place(path, { line: e.line, col: e.col }, e);
  }

  /** AmneziaWG 3.x keys, parsed as awg(8) does (docs/import.md#how-the-file-is-read). */
  awg3(e: IniEntry, base: Path): void {
    const vat: Loc = { line: e.line, col: e.valueCol };
    const at: Loc = { line: e.line, col: e.col };
    if (e.lower === 'headerprotectionkey') {
      const path: Path = [...base, 'obfuscation', 'headerProtectionKey'];
      const bad = zodMessage(WgKey.safeParse(e.value));
      if (bad)
        return this.err(vat, path, `HeaderProtectionKey: ${bad.replace('WireGuard key', 'key')}`);
      this.obfuscation.headerProtectionKey = this.secret(e.value, `${this.name}.hpk`);
      const hint =
        this.keyMode === 'inline'
          ? [' inline secret: keep this file private, or import with --key-file']
          : [];
      return this.place(path, at, e, hint);
    }
    const ranged = AWG3_RANGES[e.lower as keyof typeof AWG3_RANGES];
    if (ranged !== undefined) {
      const path: Path = [...base, 'obfuscation', ranged];
      const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(e.value);
      const a = m ? Number(m[1]) : NaN;
      const b = m?.[2] !== undefined ? Number(m[2]) : a;
      // awg(8) would silently truncate to uint16; refuse instead
      if (!m || a > 65535 || b > 65535)
        return this.err(
          vat,
          path,
          `${e.key} must be 0-65535 or a range "MIN-MAX", got "${e.value}"`,
        );
      if (b < a) return this.err(vat, path, `${e.key} range "${e.value}" has MAX < MIN`);
      this.obfuscation[ranged] = m[2] === undefined ? a : `${a}-${b}`;
      return this.place(path, at, e);
    }
    const flag = AWG3_BOOLS[e.lower as keyof typeof AWG3_BOOLS];
    const path: Path = [...base, 'obfuscation', flag];
    const low = e.value.toLowerCase();
    let v: boolean | undefined;
    if (low === 'on' || low === 'true') v = true;
    else if (low === 'off' || low === 'false') v = false;
    else if (/^\d{1,10}$/.test(low)) v = Number(low) !== 0;
    if (v === undefined)
      return this.err(
        vat,
        path,
        `${e.key} must be on, off or a number (0 = off), got "${e.value}"`,
      );
    this.obfuscation[flag] = v;
    this.place(path, at, e);
  }

  /** Check an I1–I5 tag string with the model's tag parser, locating the bad tag. */
  tags(e: IniEntry, path: Path): boolean {
    const re = /<[^<>]*>/g;
    for (let m = re.exec(e.value); m; m = re.exec(e.value)) {
      const r = parseTagString(m[0]);
      if (!r.ok) {
        const legacy = /^<\s*(c|wt|d|ds|dz)\b/.test(m[0])
          ? ' (a tag of other AmneziaWG versions that awg does not generate)'
          : '';
        this.err(
          { line: e.line, col: e.valueCol + m.index },
          path,
          `${e.key}: ${r.error}${legacy}`,
        );
        return false;
      }
    }
    const whole = parseTagString(e.value);
    if (!whole.ok) this.err({ line: e.line, col: e.valueCol }, path, `${e.key}: ${whole.error}`);
    return whole.ok;
  }

  peer(s: IniSection, index: number): void {
    const base: Path = [...this.base(), 'peers', index];
    this.locs.set(pathString(base), s);
    const seen = new Map<string, IniEntry>();
    const peer: Record<string, unknown> = {};
    const allowed: string[] = [];
    const lostHere: string[] = [];
    this.pending = [];
    for (const e of s.entries) {
      const at: Loc = { line: e.line, col: e.col };
      const vat: Loc = { line: e.line, col: e.valueCol };
      if (!this.singular(e, seen, base)) continue;
      if (UNSUPPORTED_PEER[e.lower] !== undefined) {
        this.err(at, base, `${e.key} (${UNSUPPORTED_PEER[e.lower]}) is not supported`);
        continue;
      }
      if (!PEER_KEYS.has(e.lower)) {
        this.unknown(e, base, 'Peer');
        continue;
      }
      switch (e.lower) {
        case 'publickey':
        case 'presharedkey': {
          const field = e.lower === 'publickey' ? 'publicKey' : 'presharedKey';
          const bad = zodMessage(WgKey.safeParse(e.value));
          if (bad) {
            this.err(vat, [...base, field], `${e.key}: ${bad}`);
            break;
          }
          peer[field] =
            field === 'publicKey'
              ? e.value
              : this.secret(e.value, `${this.name}-peer${index + 1}.psk`);
          this.place([...base, field], at, e);
          break;
        }
        case 'allowedips': {
          let first = true;
          for (const item of splitList(e)) {
            const iat: Loc = { line: e.line, col: item.col };
            const c = parseIniAddress(item.value, true);
            if (typeof c === 'string') {
              this.err(iat, [...base, 'allowedIPs', allowed.length], `AllowedIPs: ${c}`);
              continue;
            }
            const later = this.lost.get(`${iat.line}:${iat.col}`);
            if (later !== undefined) {
              const as = later.value === c.value ? '' : ` as ${later.value}`;
              this.err(
                iat,
                [...base, 'allowedIPs'],
                `AllowedIPs ${c.value} on line ${iat.line} is also claimed${as} on line ${later.line} by a later [Peer] (line ${later.peerLine}); WireGuard gives a prefix to the last peer that claims it, so only that peer gets it`,
                'warning',
              );
              lostHere.push(
                ` not imported: AllowedIPs ${c.value} (line ${iat.line}): the [Peer] on line ${later.peerLine} claims it too, and WireGuard gives it to the last claim (line ${later.line})`,
              );
              continue;
            }
            if (c.prefix === 0) {
              if (c.v6) this.full6 = true;
              else this.full4 = true;
            } else {
              this.splitIPs.push(c.value);
              if (c.v6) this.split6 = true;
            }
            for (const k of c.v6 ? ['default', 'ipv6'] : ['default'])
              if (!this.locs.has(k)) this.locs.set(k, iat);
            this.locs.set(pathString([...base, 'allowedIPs', allowed.length]), iat);
            if (first)
              this.place(
                allowed.length === 0
                  ? [...base, 'allowedIPs']
                  : [...base, 'allowedIPs', allowed.length],
                iat,
                e,
              );
            first = false;
            allowed.push(c.value);
          }
          // an entry whose items all went elsewhere keeps its comments for the next key
          if (first)
            this.pending.push(...e.comments, ...(e.trailing !== undefined ? [e.trailing] : []));
          break;
        }
        case 'endpoint': {
          const m = ENDPOINT_RE.exec(e.value);
          let bad = zodMessage(Endpoint.safeParse(e.value));
          if (!bad && m?.[1] !== undefined && !ipaddr.IPv6.isValid(m[1]))
            bad = `has a bad IPv6 address "${m[1]}"`;
          if (
            !bad &&
            m?.[2] !== undefined &&
            /^[0-9.]+$/.test(m[2]) &&
            !ipaddr.IPv4.isValidFourPartDecimal(m[2])
          )
            bad = `has a bad IPv4 address "${m[2]}"`;
          if (bad && /^[0-9a-fA-F:]+:\d+$/.test(e.value) && e.value.split(':').length > 2)
            bad += '; write IPv6 endpoints as [address]:port';
          if (bad) this.err(vat, [...base, 'endpoint'], `Endpoint "${e.value}" ${bad}`);
          else {
            peer.endpoint = e.value;
            this.place([...base, 'endpoint'], at, e);
          }
          break;
        }
        case 'persistentkeepalive': {
          const path = [...base, 'persistentKeepalive'];
          if (/^\d+-\d+$/.test(e.value)) {
            this.err(
              vat,
              path,
              `PersistentKeepalive range "${e.value}" (AmneziaWG 3.x) is not supported yet`,
            );
            break;
          }
          const n = e.value.toLowerCase() === 'off' ? 0 : parseUint(e.value, 65535);
          if (n === undefined)
            this.err(vat, path, `PersistentKeepalive must be "off" or 0-65535, got "${e.value}"`);
          else {
            peer.persistentKeepalive = n;
            this.place(path, at, e);
          }
          break;
        }
      }
    }
    if (!seen.has('publickey')) this.err(s, [...base, 'publicKey'], 'no PublicKey in [Peer]');
    const out: Record<string, unknown> = {};
    for (const k of ['publicKey', 'presharedKey', 'endpoint'] as const)
      if (peer[k] !== undefined) out[k] = peer[k];
    out.allowedIPs = allowed;
    if (peer.persistentKeepalive !== undefined) out.persistentKeepalive = peer.persistentKeepalive;
    if (lostHere.length > 0) {
      if (allowed.length === 0) {
        // wg(8) accepts a peer without allowed IPs: nothing is sent to it or accepted from it
        lostHere.push(' This peer keeps no allowed IPs: as under wg-quick, no traffic goes to it.');
        this.err(
          s,
          [...base, 'allowedIPs'],
          'this [Peer] keeps no allowed IPs: later peers claim all of them, so, as under wg-quick, no traffic goes to it',
          'warning',
        );
      }
      this.notes.push({ path: [...base, 'allowedIPs'], before: lostHere });
    }
    this.sectionNote(s, base);
    this.peers.push(out);
  }

  /** Section comments go above the section's node; unplaced ones join them. */
  sectionNote(s: IniSection, base: Path): void {
    const before = [
      ...s.comments,
      ...(s.trailing !== undefined ? [s.trailing] : []),
      ...this.pending,
    ];
    this.pending = [];
    if (before.length > 0) this.notes.push({ path: base, before });
  }

  /** false (and an error) when a singular key repeats in its section */
  singular(e: IniEntry, seen: Map<string, IniEntry>, base: Path): boolean {
    const prev = seen.get(e.lower);
    if (prev && !REPEATABLE.has(e.lower)) {
      this.err(e, base, `duplicate ${e.key} (first set on line ${prev.line})`);
      return false;
    }
    if (!prev) seen.set(e.lower, e);
    return true;
  }

  unknown(e: IniEntry, base: Path, section: 'Interface' | 'Peer'): void {
    const other = section === 'Interface' ? PEER_KEYS : INTERFACE_KEYS;
    const hint = other.has(e.lower)
      ? `; it belongs in [${section === 'Interface' ? 'Peer' : 'Interface'}]`
      : '';
    this.err(e, base, `unknown key ${e.key} in [${section}]${hint}`);
  }
}

/** stands in for the tunnel name in results that carry a name error */
const PLACEHOLDER_NAME = 'wg0';

interface NameChoice {
  name: string;
  /** what to report about the choice, if anything */
  issue?: { message: string; severity: Issue['severity']; path: Path };
}

/**
 * The tunnel name: `--name` when given (an invalid one is an error, with a suggestion);
 * else the file's base name; else, when that is not a valid name, one derived from it by
 * `suggestName` (a warning says which); else an error asking for --name.
 */
export function chooseTunnelName(file: string, requested?: string): NameChoice {
  if (requested !== undefined) {
    const problem = tunnelNameProblem(requested);
    if (problem === undefined) return { name: requested };
    const s = suggestName(requested);
    return {
      name: s ?? PLACEHOLDER_NAME,
      issue: {
        severity: 'error',
        path: ['tunnels', requested],
        message: `tunnel name "${requested}" (from --name) is invalid: ${problem}; ${s !== undefined ? `use --name ${s}` : 'choose another with --name'}`,
      },
    };
  }
  const base = nameFromFile(file);
  const problem = tunnelNameProblem(base);
  if (problem === undefined) return { name: base };
  const s = suggestName(base);
  if (s === undefined)
    return {
      name: PLACEHOLDER_NAME,
      issue: {
        severity: 'error',
        path: ['tunnels', base],
        message: `the file name "${base}" is not a valid tunnel name (${problem}) and gives none; name the tunnel with --name`,
      },
    };
  return {
    name: s,
    issue: {
      severity: 'warning',
      path: ['tunnels', s],
      message: `the file name "${base}" is not a valid tunnel name (${problem}); imported as tunnel "${s}", choose another with --name`,
    },
  };
}

/** Convert one wg-quick / awg-quick file. See the module comment for the contract. */
export function importWgQuick(text: string, opts: ImportOptions): ImportResult {
  const file = opts.file;
  const choice = chooseTunnelName(file, opts.name);
  const empty: ConfigInput = { version: 1 };
  try {
    return run(text, opts, choice);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return {
      yaml: '',
      config: empty,
      issues: [
        { file, path: '', message: `internal error while importing: ${msg}`, severity: 'error' },
      ],
      secretFiles: [],
      tunnelName: choice.name,
      ok: false,
    };
  }
}

function run(text: string, opts: ImportOptions, choice: NameChoice): ImportResult {
  const file = opts.file;
  const name = choice.name;
  const { doc: ini, issues: syntax } = parseIni(text, file);
  const im = new Importer(file, name, opts.keyMode ?? 'inline');
  if (choice.issue)
    im.err(undefined, choice.issue.path, choice.issue.message, choice.issue.severity);
  im.issues.push(...syntax);

  const ifaces = ini.sections.filter((s) => s.kind === 'interface');
  const peers = ini.sections.filter((s) => s.kind === 'peer');
  if (ifaces.length === 0) im.err({ line: 1, col: 1 }, im.base(), 'no [Interface] section');
  for (const extra of ifaces.slice(1))
    im.err(
      extra,
      im.base(),
      `second [Interface] section (the first is on line ${ifaces[0]!.line})`,
    );
  if (ifaces[0]) im.interface(ifaces[0]);
  im.lost = laterClaims(peers);
  peers.forEach((p, i) => im.peer(p, i));
  if (peers.length === 0)
    im.err(
      ifaces[0] ?? { line: 1, col: 1 },
      [...im.base(), 'peers'],
      'no [Peer] section: a tunnel needs at least one peer',
    );
  const keys = new Map<string, number>();
  im.peers.forEach((p, i) => {
    const k = p.publicKey as string | undefined;
    if (k === undefined) return;
    const prev = keys.get(k);
    if (prev !== undefined)
      im.err(
        peers[i],
        [...im.base(), 'peers', i, 'publicKey'],
        `peer with the same PublicKey as the peer on line ${peers[prev]!.line}`,
      );
    else keys.set(k, i);
  });

  const isAwg = im.awgKeys.length > 0;
  const type = opts.type ?? (isAwg ? 'amneziawg' : 'wireguard');
  if (type === 'wireguard')
    for (const e of im.awgKeys)
      im.err(e, im.base(), `${e.key} is an AmneziaWG key but the tunnel type is wireguard`);

  const tunnel: Record<string, unknown> = { type };
  for (const k of ['privateKey', 'addresses', 'dns', 'mtu', 'listenPort'] as const)
    if (im.tunnel[k] !== undefined) tunnel[k] = im.tunnel[k];
  if (type === 'amneziawg') {
    const o: Record<string, unknown> = {};
    for (const k of [...AWG_SIMPLE, ...AWG_H, ...AWG_I, ...AWG3_FIELDS])
      if (im.obfuscation[k] !== undefined) o[k] = im.obfuscation[k];
    tunnel.obfuscation = o;
    // no MTU: awg-quick took the route's MTU − 80 (1420 on Ethernet), which leaves no room
    // for S4; the YAML leaves mtu out too, and awg's default makes that room
    const s4 = o.s4 as number | undefined;
    // (past the default's floor a warning at s4 says more)
    if (tunnel.mtu === undefined && s4 && defaultMtu({ obfuscation: { s4 } }) === fittingMtu(s4))
      im.notes.push({
        path: [...im.base(), 'obfuscation', 's4'],
        before: [
          ` No MTU in the file: awg's default, ${fittingMtu(0)} - s4 = ${fittingMtu(s4)}, makes transport datagrams`,
          ` (MTU + ${TRANSPORT_OVERHEAD} + s4 bytes) fit a ${PATH_MTU}-byte path; awg-quick used its link MTU - 80.`,
        ],
      });
  }
  tunnel.peers = im.peers;

  const route = wgQuickRouting(im, name);
  const config: Record<string, unknown> = {
    version: 1,
    tunnels: { [name]: tunnel },
    ...route.config,
  };
  const defaultNote = route.note;
  if (route.config.dns !== undefined) {
    const at = im.locs.get(pathString([...im.base(), 'dns']));
    if (at) im.locs.set('dns', at);
  }

  const yaml = render(
    config,
    im,
    opts.schemaUrl ?? SCHEMA_URL,
    ini.tailComments,
    defaultNote,
    file,
  );
  const issues = im.issues;
  if (!issues.some((i) => i.severity === 'error')) {
    // The contract: what we emit loads. Schema and cross-field findings, located in the INI.
    const check = Config.safeParse(parseYaml(yaml));
    if (!check.success) {
      for (const z of check.error.issues) {
        const p = pathString(z.path.filter((k): k is string | number => typeof k !== 'symbol'));
        im.err(locate(im.locs, p), [p], z.message);
      }
    } else {
      for (const f of checkSemantics(check.data))
        im.err(locate(im.locs, pathString(f.path)), f.path, f.message, f.severity);
    }
  }
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  return {
    yaml,
    config: config as ConfigInput,
    issues,
    secretFiles: im.secretFiles,
    tunnelName: name,
    ok: !issues.some((i) => i.severity === 'error'),
  };
}

const RULE_EXAMPLE = (name: string): string =>
  `   rules: [{ match: { name: firefox }, target: ${name} }]`;

/**
 * What wg-quick routed, as `default`, `ipv6` and `dns` (wg-quick(8) on Linux: `add_route`,
 * `set_dns`). With Table unset, `auto` or `main`, every AllowedIPs prefix was routed for
 * every process: /0 through wg-quick's own table and rule, the rest through main.
 * `default: <tunnel>` means the same here: the tunnel's table holds the AllowedIPs routes
 * and, without a /0, throws every other destination back to main. `Table = off` added no
 * route, and another table got the routes but no rule pointing at it (hooks may add one,
 * awg runs none), so nothing went through the tunnel by default: `default: direct`.
 * DNS servers replaced the system resolver whenever DNS was set; awg can do that only for
 * the default tunnel. wg-quick has no kill switch and this sets none.
 */
function wgQuickRouting(
  im: Importer,
  name: string,
): { config: Record<string, unknown>; note: string[] } {
  const table = im.table?.value;
  const tableRoutes = table === undefined || ['auto', 'main', '254'].includes(table);
  const full = im.full4 || im.full6;
  const hasPrefixes = full || im.splitIPs.length > 0;
  const dns = im.tunnel.dns as string[] | undefined;
  if (!tableRoutes || !hasPrefixes) {
    const why =
      table === 'off'
        ? `Table = off: wg-quick added no routes, so nothing went through ${name} unless hooks routed it.`
        : !tableRoutes
          ? `Table = ${table}: wg-quick put the routes in table ${table} and no rule sent traffic there (hooks may have).`
          : `No AllowedIPs: wg-quick routed nothing through ${name}.`;
    if (dns !== undefined) {
      const at = im.locs.get(pathString([...im.base(), 'dns']));
      im.err(
        at,
        [...im.base(), 'dns'],
        `DNS: wg-quick pointed the system resolver at ${dns.join(', ')}; awg does that only for the default tunnel (dns.system: default-tunnel), and ${name} is not the default (${table !== undefined && !tableRoutes ? `Table = ${table}` : 'no AllowedIPs'}); apps sent to ${name} by rules still resolve through these servers`,
        'warning',
      );
    }
    return {
      config: { default: 'direct' },
      note: [` ${why}`, ` Send apps through it with rules, e.g.`, RULE_EXAMPLE(name)],
    };
  }
  const config: Record<string, unknown> = { default: name };
  // v6 prefixes are routed only with ipv6: tunnel; without ::/0 the rest of v6 is thrown to main
  if (im.full6 || im.split6) config.ipv6 = 'tunnel';
  if (dns !== undefined) config.dns = { system: 'default-tunnel' };
  if (full)
    return {
      config,
      note: [
        ` AllowedIPs include ${[im.full4 ? '0.0.0.0/0' : '', im.full6 ? '::/0' : ''].filter(Boolean).join(' and ')}: full tunnel, as wg-quick did.`,
        ' Add `direct` rules to exclude apps.',
        ...(im.full6
          ? []
          : im.split6
            ? [' IPv6 goes through it only to its IPv6 AllowedIPs (no ::/0), as with wg-quick.']
            : [' IPv6 was not tunnelled (no ::/0); set `ipv6: block` to stop it going direct.']),
      ],
    };
  return {
    config,
    note: [
      ` Split tunnel, as wg-quick routed it: traffic to ${summarize(im.splitIPs)} goes through ${name} for every process;`,
      ' other destinations go direct (the tunnel table throws them back to the main table).',
      ` Add \`direct\` rules to exclude apps, or set \`default: direct\` and send only some apps through ${name}, e.g.`,
      RULE_EXAMPLE(name),
    ],
  };
}

function summarize(ips: string[]): string {
  return ips.length <= 3
    ? ips.join(', ')
    : `${ips.slice(0, 3).join(', ')} and ${ips.length - 3} more`;
}

/** The nearest recorded location for a config path (longest known prefix). */
function locate(locs: Map<string, Loc>, p: string): Loc | undefined {
  for (let q = p; q !== ''; q = q.replace(/(\.[^.[]*|\[\d+\])$/, '')) {
    const l = locs.get(q);
    if (l) return l;
    if (!/[.[]/.test(q)) break;
  }
  return undefined;
}

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

function render(
  config: Record<string, unknown>,
  im: Importer,
  schemaUrl: string,
  tail: string[],
  defaultNote: string[],
  file: string,
): string {
  const doc = new Document(config);
  doc.commentBefore = ` yaml-language-server: $schema=${schemaUrl}\n Imported from ${file.split(/[\\/]/).pop() ?? file} by \`awg import\`.`;
  // comments come from the INI file: no key material from them (scrubSecrets)
  for (const n of im.notes)
    annotate(
      doc,
      n.path,
      n.before.map(scrubSecrets),
      n.trailing === undefined ? undefined : scrubSecrets(n.trailing),
    );
  annotate(doc, ['default'], defaultNote);
  annotate(
    doc,
    ['dns'],
    [' wg-quick pointed the system resolver at the tunnel DNS; so does this.'],
  );
  if (tail.length > 0) doc.comment = tail.map(scrubSecrets).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** Attach comments to the node at `path`: map entries get them on the key, items on the item. */
function annotate(doc: Document, path: Path, before: string[], trailing?: string): void {
  const last = path[path.length - 1];
  const parent = doc.getIn(path.slice(0, -1), true) as YamlNode | undefined;
  let target: YamlNode | undefined;
  let value: YamlNode | undefined;
  if (isMap(parent)) {
    const pair = parent.items.find(
      (p: Pair) => isScalar(p.key) && (p.key as Scalar).value === last,
    );
    target = pair?.key as YamlNode | undefined;
    value = pair?.value as YamlNode | undefined;
    // a comment on the first key of a sequence item would print after "- "
    if (pair !== undefined && pair === parent.items[0] && isSeq(doc.getIn(path.slice(0, -2), true)))
      target = parent;
  } else if (isSeq(parent) && typeof last === 'number') {
    target = parent.items[last] as YamlNode | undefined;
    value = target;
  }
  if (!target) return;
  const add = before.map((c) => c.trimEnd()).join('\n');
  if (add !== '')
    target.commentBefore = target.commentBefore ? `${target.commentBefore}\n${add}` : add;
  if (trailing !== undefined) {
    if (isScalar(value)) value.comment = trailing.trimEnd();
    else
      target.commentBefore = target.commentBefore
        ? `${target.commentBefore}\n${trailing}`
        : trailing;
  }
}
