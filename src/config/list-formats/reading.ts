/**
 * What the readers share: a bounded byte reader (every length checked against what is left,
 * never an allocation sized by an untrusted number), the place of a byte in a binary format,
 * and an emitter that counts entries against `maxEntries` and stops a reader past it.
 */
import type { ListEntryKind, ListPlace, ListSink } from './types.js';

/** A structure that cannot be read on: the reader stops and reports it at `offset`. */
export class Damaged extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'Damaged';
  }
}

/** the place of a byte of a binary format: line 1, column offset+1 (types.ts ListPlace) */
export function bytePlace(offset: number): ListPlace {
  return { line: 1, col: offset + 1, offset };
}

/** Reads a byte range front to back; every read past `end` is a `Damaged` at the offset. */
export class ByteReader {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    start = 0,
    readonly end = b.length,
  ) {
    this.pos = start;
  }

  get left(): number {
    return this.end - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.end) throw new Damaged(`truncated: ${what} missing`, this.pos);
    return this.b[this.pos++]!;
  }

  /** Go's binary.ReadUvarint: at most 10 bytes; a value past 2^53 is refused (no list needs it) */
  uvarint(what: string): number {
    const at = this.pos;
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const c = this.u8(what);
      x += (c & 0x7f) * mul;
      if (c < 0x80) {
        if (x > Number.MAX_SAFE_INTEGER) throw new Damaged(`${what}: ${x} is too large`, at);
        return x;
      }
      mul *= 128;
    }
    throw new Damaged(`${what}: a varint longer than 10 bytes`, at);
  }

  /** a count of items each at least `minSize` bytes long: more than can fit is damage */
  count(what: string, minSize: number): number {
    const at = this.pos;
    const n = this.uvarint(what);
    if (n * minSize > this.left)
      throw new Damaged(`${what}: ${n} declared, only ${this.left} bytes left`, at);
    return n;
  }

  /** big-endian uint64 (Go binary.Read of a uint64) */
  u64be(what: string): number {
    const at = this.pos;
    if (this.left < 8) throw new Damaged(`truncated: ${what} missing`, at);
    let x = 0;
    for (let i = 0; i < 8; i++) x = x * 256 + this.b[this.pos++]!;
    if (x > Number.MAX_SAFE_INTEGER) throw new Damaged(`${what}: ${x} is too large`, at);
    return x;
  }

  /** `n` bytes as a view (no copy) */
  bytes(n: number, what: string): Uint8Array {
    if (n > this.left)
      throw new Damaged(`${what}: ${n} bytes declared, only ${this.left} left`, this.pos);
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** a length-prefixed (uvarint) byte string */
  lenBytes(what: string): Uint8Array {
    return this.bytes(this.uvarint(what), what);
  }
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** UTF-8 bytes as text (bad sequences become U+FFFD, which the list grammar refuses) */
export function utf8(b: Uint8Array): string {
  return decoder.decode(b);
}

/**
 * Hands entries to the sink, counting them: past `max` it reports one error and `stopped`
 * turns true (the reader stops: more entries than allowed is a bomb or the wrong file, not
 * something to truncate silently).
 */
export class Emitter {
  n = 0;
  stopped = false;
  constructor(
    readonly sink: ListSink,
    readonly max: number,
  ) {}

  entry(kind: ListEntryKind, value: string, at: ListPlace): boolean {
    if (this.stopped) return false;
    if (++this.n > this.max) {
      this.stopped = true;
      this.sink.problem(
        `more than ${this.max} entries (maxEntries): refused as a whole, not truncated`,
        at,
        'error',
      );
      return false;
    }
    this.sink.entry(kind, value, at);
    return true;
  }

  error(message: string, at: ListPlace): void {
    this.sink.problem(message, at, 'error');
  }

  warn(message: string, at: ListPlace): void {
    this.sink.problem(message, at, 'warning');
  }
}

/**
 * Runs a reader's body: a `Damaged` becomes an error at its place, anything else thrown (a
 * bug, never the input's fault) an error at the start, so `read` never throws.
 */
export function guarded(
  sink: ListSink,
  place: (offset: number) => ListPlace,
  body: () => void,
  where: (offset: number) => string = (o) => ` (byte ${o})`,
): void {
  try {
    body();
  } catch (e) {
    if (e instanceof Damaged) sink.problem(e.message + where(e.offset), place(e.offset), 'error');
    else
      sink.problem(
        `internal error while reading the list: ${e instanceof Error ? e.message : String(e)}`,
        { line: 1, col: 1 },
        'error',
      );
  }
}

/** a few names, quoted and comma-separated, with "…" when there are more */
export function someOf(names: readonly string[], total: number, n = 8): string {
  const shown = names.slice(0, n).join(', ');
  return total > n ? `${shown}, … (${total} in all)` : shown;
}
