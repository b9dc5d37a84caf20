/**
 * The key of a cgroup in an nft `cgroupsv2` set: its id (the inode number of its directory)
 * as 8 bytes in host byte order. Pure, so the firewall's render path (which `awg validate`
 * loads) needs no native module.
 */
import os from 'node:os';

export function cgroupIdKey(id: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  if (os.endianness() === 'LE') b.writeBigUInt64LE(BigInt(id));
  else b.writeBigUInt64BE(BigInt(id));
  return b;
}
