/**
 * A recording sink for the list readers (src/config/list-formats/types.ts): what a reader
 * hands over, by kind, with places, independent of the collector that checks entries.
 */
import type {
  ListEntryKind,
  ListPlace,
  ListReader,
  ReadOptions,
} from '../../src/config/list-formats/types.js';

export interface Recorded {
  entries: { kind: ListEntryKind; value: string; at: ListPlace }[];
  problems: { message: string; at: ListPlace; severity: 'error' | 'warning' }[];
  errors: string[];
  warnings: string[];
  /** entries per kind */
  kinds: Partial<Record<ListEntryKind, number>>;
  values(kind: ListEntryKind): string[];
}

export function readWith(
  reader: ListReader,
  bytes: Uint8Array | string,
  opts: Partial<ReadOptions> = {},
): Recorded {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const entries: Recorded['entries'] = [];
  const problems: Recorded['problems'] = [];
  reader.read(
    b,
    {
      entry: (kind, value, at) => entries.push({ kind, value, at }),
      problem: (message, at, severity) => problems.push({ message, at, severity }),
    },
    { maxEntries: 1_000_000, ...opts },
  );
  const kinds: Recorded['kinds'] = {};
  for (const e of entries) kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
  const at = (p: Recorded['problems'][number]) => `${p.at.line}:${p.at.col}: ${p.message}`;
  return {
    entries,
    problems,
    errors: problems.filter((p) => p.severity === 'error').map(at),
    warnings: problems.filter((p) => p.severity === 'warning').map(at),
    kinds,
    values: (kind) => entries.filter((e) => e.kind === kind).map((e) => e.value),
  };
}
