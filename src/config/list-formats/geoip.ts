/**
 * A v2ray/Xray `geoip.dat` (geodat.ts): one category's prefixes, each `ip/prefix` an `address`
 * entry (a prefix with host bits set is refused by the list grammar, as in a plain list).
 *
 * The category is required (`geoip.dat:ru`, or `category:`) and found ignoring case. Refused:
 * an `@attribute` (geoip has none); a reversed category (`!cn`, Xray's "every address but
 * these") and an entry with `reverse_match` (v2fly: `inverse_match`) set — a list names the
 * addresses a rule takes, never all the others.
 */
import { findEntry, probeDat } from './geodat.js';
import { ipText } from './ip-bytes.js';
import { PbFields } from './protobuf.js';
import { Emitter, bytePlace, guarded } from './reading.js';
import type { ListReader, ListSink, ReadOptions } from './types.js';

function read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void {
  const out = new Emitter(sink, opts.maxEntries);
  guarded(sink, bytePlace, () => {
    const category = opts.category;
    if (category?.includes('@')) {
      out.error(`category ${category}: geoip categories have no @attributes`, bytePlace(0));
      return;
    }
    if (category?.startsWith('!')) {
      out.error(
        `category ${category}: a reversed category is every address outside ${category.slice(1)}; a list cannot take that`,
        bytePlace(0),
      );
      return;
    }
    const entry = findEntry(bytes, category, 'geoip', out);
    if (!entry) return;
    const items = new PbFields(bytes, entry.start, entry.end);
    while (items.next() && !out.stopped) {
      const itemAt = bytePlace(items.tagAt);
      if (items.field === 3 && items.wire === 0 && items.varint !== 0) {
        out.error(
          `${category}: reverse_match is set (every address outside the category); a list cannot take that (byte ${items.tagAt})`,
          itemAt,
        );
        continue;
      }
      if (items.field !== 2) continue;
      if (items.wire !== 2) {
        out.error(`a CIDR that is not a message (byte ${items.tagAt})`, itemAt);
        continue;
      }
      let ip: Uint8Array | undefined;
      let prefix = 0;
      const f = new PbFields(bytes, items.start, items.end);
      while (f.next()) {
        if (f.field === 1 && f.wire === 2) ip = bytes.subarray(f.start, f.end);
        else if (f.field === 2 && f.wire === 0) prefix = f.varint;
      }
      if (!ip || (ip.length !== 4 && ip.length !== 16)) {
        out.error(
          `a CIDR whose address is ${ip ? `${ip.length} bytes` : 'missing'} (4 or 16) (byte ${items.tagAt})`,
          itemAt,
        );
        continue;
      }
      if (prefix > ip.length * 8) {
        out.error(
          `${ipText(ip)}/${prefix}: a prefix longer than the address (byte ${items.tagAt})`,
          itemAt,
        );
        continue;
      }
      out.entry('address', `${ipText(ip)}/${prefix}`, itemAt);
    }
  });
}

export const geoipReader: ListReader = {
  format: 'geoip',
  detect: (b) => {
    const p = probeDat(b);
    return 'kind' in p && p.kind === 'geoip';
  },
  read,
};
