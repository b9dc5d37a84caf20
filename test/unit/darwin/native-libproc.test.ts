/**
 * libproc's buffers (src/native/darwin/libproc.ts), byte for byte. Facts (libproc.h,
 * sys/proc_info.h): proc_listallpids fills pid_t (i32, little-endian on x86_64 and arm64)
 * and returns how many; proc_pidpath writes a NUL-terminated path into a buffer of
 * PROC_PIDPATHINFO_MAXSIZE = 4 × MAXPATHLEN (1024) = 4096 and returns its length.
 */
import { describe, expect, it } from 'vitest';
import { PROC_PIDPATHINFO_MAXSIZE, decodePath, decodePids } from '../../../src/native/darwin/libproc.js';

describe('libproc buffers', () => {
  it('PROC_PIDPATHINFO_MAXSIZE', () => {
    expect(PROC_PIDPATHINFO_MAXSIZE).toBe(4096);
  });
  it('proc_listallpids: i32 little-endian; only `count` entries; 0 (the kernel task) dropped', () => {
    const b = Buffer.from('b3150000' + '01000000' + '00000000' + 'ffff0000' + '39300000' + '07000000', 'hex');
    expect(decodePids(b, 5)).toEqual([0x15b3, 1, 0xffff, 12345]);
    expect(decodePids(b, 2)).toEqual([0x15b3, 1]);
    expect(decodePids(b.subarray(0, 7), 2)).toEqual([0x15b3]); // a partial entry is not read
  });
  it('proc_pidpath: up to the returned length or the NUL', () => {
    const b = new Uint8Array(PROC_PIDPATHINFO_MAXSIZE);
    const path = '/Applications/Safari.app/Contents/MacOS/Safari';
    b.set(Buffer.from(path));
    expect(decodePath(b, path.length)).toBe(path);
    expect(decodePath(b, 4096)).toBe(path);
    expect(decodePath(Buffer.from('/usr/bin/curl\0junk'), 18)).toBe('/usr/bin/curl');
    expect(decodePath(b, 0)).toBeUndefined();
  });
});
