/**
 * A sing-box binary rule-set (`.srs`; sing-box `common/srs/binary.go`, versions 1–4):
 *
 *   "SRS" · u8 version · zlib( uvarint rule count · rules )
 *   rule:  u8 0 (default) · items · 0xFF · u8 invert     | u8 1 (logical) · u8 mode ·
 *          uvarint n · n rules · u8 invert
 *   item:  u8 type · payload — 2 domain (a succinct trie, srs-trie.ts), 3 domain_keyword and
 *          4 domain_regex (uvarint n · n × (uvarint len · bytes)), 6 ip_cidr (an IP set:
 *          u8 1 · u64 BE n · n × (uvarint len · from · uvarint len · to), inclusive ranges)
 *
 * The trie's keys say what each name means (sing `common/domain` matcher.go): `\n` + d (a
 * `domain_suffix` since version 2) → `domain`; `\r` + `.d` (a suffix written `.d`, and half of
 * a version-1 suffix) → `wildcard`; a bare d → `full`. A version-1 suffix d is stored as the
 * full d and `\r.d`: the two together are read back as one `domain` entry, as sing-box's own
 * decompiler does. `\r` + text without the dot (a suffix on any boundary, written by sing-box
 * before 1.8) would match `fooexample.com` for `example.com`: refused. An IP range that is not
 * one prefix becomes the prefixes that cover exactly it.
 *
 * Refused like the source format (sing-box.ts): logical rules, `invert`, and every item that
 * narrows a rule (port, network, process, source address, …); each at its item's offset.
 * Places are byte offsets into the decompressed stream (after the 4-byte header). The stream
 * is inflated with a cap (64 MiB, less for a small `maxEntries`): a bomb stops at the cap.
 */
import { inflateSync } from 'node:zlib';
import { compareBytes, rangePrefixes } from './ip-bytes.js';
import { ByteReader, Damaged, Emitter, bytePlace, utf8 } from './reading.js';
import { NARROWING as NARROWING_WHAT, narrowingMessage } from './sing-box.js';
import { TooMany, readSuccinctSet, trieKeys } from './srs-trie.js';
import type { ListPlace, ListReader, ListSink, ReadOptions } from './types.js';

export const SRS_VERSIONS = [1, 2, 3, 4] as const;
/** the inflated body at most */
export const MAX_INFLATED = 64 * 1024 * 1024;
const MAX_NESTING = 32;

/** the items that narrow a rule: what awg cannot honour */
const NARROWING: Record<number, string> = {
  0: 'query_type',
  1: 'network',
  5: 'source_ip_cidr',
  7: 'source_port',
  8: 'source_port_range',
  9: 'port',
  10: 'port_range',
  11: 'process_name',
  12: 'process_path',
  13: 'package_name',
  14: 'wifi_ssid',
  15: 'wifi_bssid',
  16: 'adguard_domain',
  17: 'process_path_regex',
  18: 'network_type',
  19: 'network_is_expensive',
  20: 'network_is_constrained',
  21: 'network_interface_address',
  22: 'default_interface_address',
};

function detect(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x53 && b[1] === 0x52 && b[2] === 0x53;
}

/** the body's place: offsets count from the start of the decompressed stream */
const at = (offset: number): ListPlace => bytePlace(offset);
const where = (offset: number) => ` (byte ${offset} of the decompressed rule-set)`;

class Body {
  constructor(
    private readonly r: ByteReader,
    private readonly out: Emitter,
    private readonly maxChars: number,
  ) {}

  run(): void {
    const n = this.r.count('rule count', 2);
    for (let i = 0; i < n && !this.out.stopped; i++) this.rule(0, true);
    if (!this.out.stopped && this.r.left > 0)
      this.out.warn(
        `${this.r.left} bytes after the last rule ignored${where(this.r.pos)}`,
        at(this.r.pos),
      );
  }

  private refuse(message: string, offset: number, emit: boolean): void {
    if (emit) this.out.error(message + where(offset), at(offset));
  }

  private rule(depth: number, emit: boolean): void {
    const r = this.r;
    const start = r.pos;
    const type = r.u8('rule type');
    if (type === 0) return this.defaultRule(emit);
    if (type !== 1) throw new Damaged(`unknown rule type ${type}`, start);
    this.refuse(
      'a logical rule (and/or of rules) cannot be read as a list of destinations',
      start,
      emit,
    );
    if (depth >= MAX_NESTING)
      throw new Damaged(`logical rules nested deeper than ${MAX_NESTING}`, start);
    const mode = r.u8('logical mode');
    if (mode > 1) throw new Damaged(`unknown logical mode ${mode}`, r.pos - 1);
    const n = r.count('logical rule count', 2);
    for (let i = 0; i < n; i++) this.rule(depth + 1, false);
    r.u8('invert');
  }

  private defaultRule(emit: boolean): void {
    const r = this.r;
    for (;;) {
      if (this.out.stopped) return;
      const start = r.pos;
      const item = r.u8('rule item');
      switch (item) {
        case 2:
          this.domains(emit);
          break;
        case 3:
          this.strings('domain_keyword', emit ? 'keyword' : undefined);
          break;
        case 4:
          this.strings('domain_regex', emit ? 'regex' : undefined);
          break;
        case 6:
          this.ipSet(emit);
          break;
        case 0xff:
          if (r.u8('invert') !== 0)
            this.refuse(
              'invert: a rule that matches what it does not name cannot be a list of destinations',
              start,
              emit,
            );
          return;
        default: {
          const name = NARROWING[item];
          if (name === undefined) throw new Damaged(`unknown rule item type ${item}`, start);
          this.refuse(
            narrowingMessage(name, NARROWING_WHAT[name] ?? 'AdGuard-style domain rules'),
            start,
            emit,
          );
          this.skipItem(item);
        }
      }
    }
  }

  private skipItem(item: number): void {
    const r = this.r;
    switch (item) {
      case 0:
      case 7:
      case 9:
        r.bytes(r.count('uint16 list', 2) * 2, 'uint16 list');
        return;
      case 5:
        this.ipSet(false);
        return;
      case 16:
        readSuccinctSet(r);
        return;
      case 18:
        r.bytes(r.count('uint8 list', 1), 'uint8 list');
        return;
      case 19:
      case 20:
        return;
      case 21: {
        const n = r.count('interface map', 2);
        for (let i = 0; i < n; i++) {
          r.u8('interface type');
          this.prefixes();
        }
        return;
      }
      case 22:
        this.prefixes();
        return;
      default:
        this.strings('string list', undefined);
    }
  }

  private prefixes(): void {
    const r = this.r;
    const n = r.count('prefix count', 2);
    for (let i = 0; i < n; i++) {
      r.lenBytes('prefix address');
      r.u8('prefix bits');
    }
  }

  private strings(what: string, kind: 'keyword' | 'regex' | undefined): void {
    const r = this.r;
    const n = r.count(what, 1);
    for (let i = 0; i < n; i++) {
      const start = r.pos;
      const v = utf8(r.lenBytes(what));
      if (kind && !this.out.entry(kind, v, at(start))) return;
    }
  }

  private ipSet(emit: boolean): void {
    const r = this.r;
    const start = r.pos;
    const version = r.u8('IP set version');
    if (version !== 1) throw new Damaged(`IP set version ${version} (only 1 exists)`, start);
    const countAt = r.pos;
    const n = r.u64be('IP range count');
    if (n * 2 > r.left)
      throw new Damaged(`IP range count: ${n} declared, only ${r.left} bytes left`, countAt);
    for (let i = 0; i < n; i++) {
      const rangeAt = r.pos;
      const from = r.lenBytes('IP range start');
      const to = r.lenBytes('IP range end');
      if ((from.length !== 4 && from.length !== 16) || to.length !== from.length)
        throw new Damaged(`an IP range of ${from.length} and ${to.length} bytes`, rangeAt);
      if (compareBytes(from, to) > 0)
        throw new Damaged('an IP range that ends before it starts', rangeAt);
      if (!emit) continue;
      for (const p of rangePrefixes(from, to))
        if (!this.out.entry('address', p, at(rangeAt))) return;
    }
  }

  private domains(emit: boolean): void {
    const set = readSuccinctSet(this.r);
    if (!emit) return;
    // a version-1 suffix is two keys for one entry: twice the entries left, and then some
    let keys: string[];
    try {
      keys = trieKeys(set, 2 * (this.out.max - this.out.n) + 2, this.maxChars);
    } catch (e) {
      if (!(e instanceof TooMany)) throw e;
      this.out.stopped = true;
      this.out.error(
        `the domain trie holds more names than maxEntries (${this.out.max}) allows: refused as a whole${where(set.at)}`,
        at(set.at),
      );
      return;
    }
    const place = at(set.at);
    const full = new Set<string>();
    const under = new Set<string>();
    for (const k of keys) {
      const mark = k.charCodeAt(0);
      const name = mark === 0x0a || mark === 0x0d ? k.slice(1) : k;
      if (/[\r\n]/.test(name)) {
        this.out.error(
          `a damaged name ${JSON.stringify(k)} in the domain trie${where(set.at)}`,
          place,
        );
      } else if (mark === 0x0a) {
        if (!this.out.entry('domain', name, place)) return;
      } else if (mark !== 0x0d) full.add(name);
      else if (name.startsWith('.') && name.length > 1) under.add(name.slice(1));
      else
        this.out.error(
          name.length === 0
            ? `a suffix that matches every name${where(set.at)}`
            : `${JSON.stringify(name)}: a suffix on any boundary (it also matches "x${name}"; sing-box before 1.8 wrote these); awg cannot honour it${where(set.at)}`,
          place,
        );
    }
    for (const w of under) {
      const both = full.delete(w);
      if (!this.out.entry(both ? 'domain' : 'wildcard', w, place)) return;
    }
    for (const f of full) if (!this.out.entry('full', f, place)) return;
  }
}

function read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void {
  const out = new Emitter(sink, opts.maxEntries);
  if (!detect(bytes)) {
    out.error('not a sing-box binary rule-set: it does not start with "SRS"', bytePlace(0));
    return;
  }
  const version = bytes[3];
  if (version === undefined || !(SRS_VERSIONS as readonly number[]).includes(version)) {
    out.error(
      version === undefined
        ? 'truncated: the version byte is missing (byte 3)'
        : `version ${version}: this reader knows rule-set versions ${SRS_VERSIONS.join(', ')} (byte 3)`,
      bytePlace(3),
    );
    return;
  }
  const cap = Math.min(MAX_INFLATED, 1024 * 1024 + 512 * opts.maxEntries);
  let body: Buffer;
  try {
    body = inflateSync(bytes.subarray(4), { maxOutputLength: cap });
  } catch (e) {
    const code = (e as { code?: string }).code;
    out.error(
      code === 'ERR_BUFFER_TOO_LARGE'
        ? `the rule-set decompresses to more than ${cap} bytes (byte 4)`
        : `the compressed body is damaged (byte 4): ${(e as Error).message}`,
      bytePlace(4),
    );
    return;
  }
  try {
    new Body(new ByteReader(body), out, MAX_INFLATED).run();
  } catch (e) {
    if (e instanceof Damaged) out.error(e.message + where(e.offset), at(e.offset));
    else
      out.error(
        `internal error while reading the rule-set: ${e instanceof Error ? e.message : String(e)}`,
        bytePlace(0),
      );
  }
}

export const srsReader: ListReader = { format: 'srs', detect, read };
