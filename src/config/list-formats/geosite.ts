/**
 * A v2ray/Xray `geosite.dat` (geodat.ts): one category's domains. Domain types: `Plain` (0, a
 * substring) → `keyword`, `Regex` (1) → `regex`, `RootDomain` (2, the name and all under it)
 * → `domain`, `Full` (3) → `full`.
 *
 * The category is required (`geosite.dat:ru-blocked`, or `category:`) and found ignoring case.
 * `@attr` keeps the domains carrying that attribute (`google@ads`); several (`@a@b`: the
 * schema's category takes one today) keep those carrying all of them, as v2ray and Xray do.
 * There is no negation: an attribute is a name,
 * and `!cn` is one (domain-list-community marks domains `@!cn`), so `google@!cn` keeps the
 * domains marked `!cn`. A filter that keeps nothing is an error naming the attributes there are.
 */
import { findEntry, parseCategory, probeDat, type Category } from './geodat.js';
import { PbFields } from './protobuf.js';
import { Emitter, bytePlace, guarded, someOf, utf8 } from './reading.js';
import type { ListEntryKind, ListReader, ListSink, ReadOptions } from './types.js';

const KINDS: readonly ListEntryKind[] = ['keyword', 'regex', 'domain', 'full'];
const KEEP_ATTRS = 64;

function read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void {
  const out = new Emitter(sink, opts.maxEntries);
  guarded(sink, bytePlace, () => {
    let cat: Category | undefined;
    if (opts.category !== undefined) {
      const parsed = parseCategory(opts.category);
      if (typeof parsed === 'string') {
        out.error(parsed, bytePlace(0));
        return;
      }
      cat = parsed;
    }
    const entry = findEntry(bytes, cat?.code, 'geosite', out);
    if (!entry || !cat) return;
    const seenAttrs = new Set<string>();
    let kept = 0;
    const items = new PbFields(bytes, entry.start, entry.end);
    while (items.next() && !out.stopped) {
      if (items.field !== 2) continue;
      const itemAt = bytePlace(items.tagAt);
      if (items.wire !== 2) {
        out.error(`a domain that is not a message (byte ${items.tagAt})`, itemAt);
        continue;
      }
      let type = 0;
      let value: string | undefined;
      const attrs: string[] = [];
      const f = new PbFields(bytes, items.start, items.end);
      while (f.next()) {
        if (f.field === 1 && f.wire === 0) type = f.varint;
        else if (f.field === 2 && f.wire === 2) value = utf8(bytes.subarray(f.start, f.end));
        else if (f.field === 3 && f.wire === 2) {
          const a = new PbFields(bytes, f.start, f.end);
          while (a.next())
            if (a.field === 1 && a.wire === 2)
              attrs.push(utf8(bytes.subarray(a.start, a.end)).toLowerCase());
        }
      }
      for (const a of attrs) if (seenAttrs.size < KEEP_ATTRS) seenAttrs.add(a);
      if (!cat.attrs.every((w) => attrs.includes(w))) continue;
      kept++;
      const kind = KINDS[type];
      if (kind === undefined)
        out.error(`domain type ${type} is not one v2ray knows (byte ${items.tagAt})`, itemAt);
      else if (value === undefined || value.length === 0)
        out.error(`a domain without a value (byte ${items.tagAt})`, itemAt);
      else out.entry(kind, value, itemAt);
    }
    if (kept === 0 && cat.attrs.length > 0 && !out.stopped) {
      const names = [...seenAttrs].sort().map((a) => `@${a}`);
      out.error(
        `no domain of ${cat.code} carries ${cat.attrs.map((a) => `@${a}`).join(' and ')}; ${names.length ? `its attributes: ${someOf(names, names.length)}` : 'it has no attributes'}`,
        bytePlace(entry.tagAt),
      );
    }
  });
}

export const geositeReader: ListReader = {
  format: 'geosite',
  detect: (b) => {
    const p = probeDat(b);
    return 'kind' in p && p.kind === 'geosite';
  },
  read,
};
