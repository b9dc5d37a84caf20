/**
 * A bounded reader of protobuf wire format (no dependency, no schema): the fields of one
 * message, front to back, each checked to lie inside it. Enough for v2ray's `.dat` files.
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; the deprecated groups (3, 4)
 * are damage.
 */
import { Damaged } from './reading.js';

export class PbFields {
  /** the current field: number, wire type, where its tag starts */
  field = 0;
  wire = 0;
  tagAt = 0;
  /** wire type 0: the value (exact up to 2^53, larger values are only compared) */
  varint = 0;
  /** wire type 2: the payload's range */
  start = 0;
  end = 0;
  private pos: number;

  constructor(
    private readonly b: Uint8Array,
    start: number,
    private readonly limit: number,
  ) {
    this.pos = start;
  }

  private readVarint(what: string): number {
    const at = this.pos;
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.limit) throw new Damaged(`truncated ${what}`, at);
      const c = this.b[this.pos++]!;
      x += (c & 0x7f) * mul;
      if (c < 0x80) return x;
      mul *= 128;
    }
    throw new Damaged(`${what}: a varint longer than 10 bytes`, at);
  }

  /** the next field, or false at the end of the message */
  next(): boolean {
    if (this.pos >= this.limit) return false;
    this.tagAt = this.pos;
    const tag = this.readVarint('field tag');
    this.field = Math.floor(tag / 8);
    this.wire = tag % 8;
    if (this.field === 0) throw new Damaged('a field numbered 0', this.tagAt);
    switch (this.wire) {
      case 0:
        this.varint = this.readVarint(`field ${this.field}`);
        return true;
      case 1:
      case 5: {
        const n = this.wire === 1 ? 8 : 4;
        if (this.limit - this.pos < n)
          throw new Damaged(`truncated field ${this.field}`, this.tagAt);
        this.pos += n;
        return true;
      }
      case 2: {
        const lenAt = this.pos;
        const len = this.readVarint(`length of field ${this.field}`);
        if (len > this.limit - this.pos)
          throw new Damaged(
            `field ${this.field}: ${len} bytes declared, only ${this.limit - this.pos} left`,
            lenAt,
          );
        this.start = this.pos;
        this.end = this.pos + len;
        this.pos = this.end;
        return true;
      }
      default:
        throw new Damaged(
          `field ${this.field}: wire type ${this.wire} is not used here`,
          this.tagAt,
        );
    }
  }
}
