/** DNS over TCP: a two-byte length before each message (RFC 1035 §4.2.2). */
export function frame(m: Buffer): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(m.length);
  return Buffer.concat([h, m]);
}

/** Splits a TCP stream into DNS messages; a partial one waits for the rest. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(d: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    const out: Buffer[] = [];
    while (this.buf.length >= 2) {
      const n = this.buf.readUInt16BE(0);
      if (this.buf.length < 2 + n) break;
      out.push(Buffer.from(this.buf.subarray(2, 2 + n)));
      this.buf = this.buf.subarray(2 + n);
    }
    return out;
  }
}
