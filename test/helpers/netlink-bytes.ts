/**
 * A small netlink encoder for tests, independent of the modules under test: nlmsghdr (host
 * order), attributes (len u16, type u16, value, padded to 4), nests with NLA_F_NESTED.
 */
export const le16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
export const le32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
export const le64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
export const be16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
export const be32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
export const be64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
};

const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);

export function nla(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(4 + value.length, 0);
  h.writeUInt16LE(type, 2);
  return pad4(Buffer.concat([h, value]));
}

export function nest(type: number, ...children: Buffer[]): Buffer {
  const body = Buffer.concat(children);
  const h = Buffer.alloc(4);
  h.writeUInt16LE(4 + body.length, 0);
  h.writeUInt16LE(type | 0x8000, 2);
  return Buffer.concat([h, body]);
}

export function nlmsg(
  type: number,
  flags: number,
  seq: number,
  portid: number,
  body: Buffer,
): Buffer {
  const h = Buffer.alloc(16);
  const b = pad4(body);
  h.writeUInt32LE(16 + b.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(portid, 12);
  return Buffer.concat([h, b]);
}

export const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
