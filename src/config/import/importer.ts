/**
 * The importer itself: reads the [Interface] and [Peer] sections of a wg-quick / awg-quick
 * file into the tunnel's fields, checking each value as the model will, and records where
 * each config path came from and which comments go with it. Pure.
 */
import ipaddr from '../../util/ipaddr.js';
import type { Issue } from '../../errors.js';
import { AwgObfuscation, Endpoint, ENDPOINT_RE, WgKey, WireguardTunnel } from '../schema.js';
import { splitList } from '../ini.js';
import type { IniEntry, IniSection } from '../ini.js';
import { parseTagString } from '../tags.js';
import type { Claim } from './claims.js';
import {
  AWG3_BOOLS,
  AWG3_RANGES,
  AWG_H,
  AWG_SIMPLE,
  INTERFACE_KEYS,
  NOT_IMPORTED,
  PEER_KEYS,
  REPEATABLE,
  UNSUPPORTED_INTERFACE,
  UNSUPPORTED_PEER,
} from './keys.js';
import { pathString } from './locations.js';
import type { Loc, Note, Path } from './locations.js';
import { parseIniAddress, parseUint, zodMessage } from './values.js';
import { safeKeyName } from './scrub.js';

/** Secret material to write next to the YAML; `file` is the path the YAML refers to. */
export interface SecretFile {
  file: string;
  content: string;
}

/**
 * One import in progress: the tunnel, peer and obfuscation fields read so far, the issues,
 * where each config path came from (`locs`) and the comments that go with it (`notes`), and
 * what the routing guess needs (the /0 and other AllowedIPs, the Table value).
 */
export class Importer {
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

  /**
   * AmneziaWG 3.x keys, read as awg(8) reads them: HeaderProtectionKey is a base64 key, the
   * padding and timing keys a uint16 or a "MIN-MAX" range of them, and RandomTrailers and
   * DisableCookies on/off, true/false or a number (0 = off).
   */
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
          const m = /^(\d{1,5})-(\d{1,5})$/.exec(e.value);
          if (m) {
            // AmneziaWG 3.x: a range, as awg(8) reads it; the tunnel becomes amneziawg
            const [a, b] = [Number(m[1]), Number(m[2])];
            if (a > 65535 || b > 65535)
              this.err(vat, path, `PersistentKeepalive range "${e.value}" exceeds 65535`);
            else if (b < a)
              this.err(vat, path, `PersistentKeepalive range "${e.value}" has MAX < MIN`);
            else {
              if (a !== b) this.awgKeys.push(e);
              peer.persistentKeepalive = a === b ? a : `${a}-${b}`;
              this.place(path, at, e);
            }
            break;
          }
          const n = e.value.toLowerCase() === 'off' ? 0 : parseUint(e.value, 65535);
          if (n === undefined)
            this.err(
              vat,
              path,
              `PersistentKeepalive must be "off", 0-65535 or a range "MIN-MAX", got "${e.value}"`,
            );
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
    this.err(e, base, `unknown key ${safeKeyName(e.key)} in [${section}]${hint}`);
  }
}
