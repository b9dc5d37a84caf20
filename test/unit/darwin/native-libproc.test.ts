/**
 * libproc's buffers (src/native/darwin/libproc.ts), byte for byte. Facts (libproc.h,
 * sys/proc_info.h): proc_listallpids fills pid_t (i32, little-endian on x86_64 and arm64)
 * and returns how many; proc_pidpath writes a NUL-terminated path into a buffer of
 * PROC_PIDPATHINFO_MAXSIZE = 4 × MAXPATHLEN (1024) = 4096 and returns its length.
 */
import { describe, expect, it } from 'vitest';
import {
  PROC_BSDSHORTINFO_SIZE,
  PROC_PIDPATHINFO_MAXSIZE,
  PROC_PIDT_SHORTBSDINFO,
  decodeBsdShortInfo,
  decodePath,
  decodePids,
} from '../../../src/native/darwin/libproc.js';

describe('libproc buffers', () => {
  it('PROC_PIDPATHINFO_MAXSIZE', () => {
    expect(PROC_PIDPATHINFO_MAXSIZE).toBe(4096);
  });
  it('proc_listallpids: i32 little-endian; only `count` entries; 0 (the kernel task) dropped', () => {
    const b = Buffer.from(
      'b3150000' + '01000000' + '00000000' + 'ffff0000' + '39300000' + '07000000',
      'hex',
    );
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

describe('proc_pidinfo(PROC_PIDT_SHORTBSDINFO): struct proc_bsdshortinfo', () => {
  // pid 633, ppid 560, pgid 560, status 2 (SRUN), comm "plugin_host", flags 0x4 (P_LP64), uid/gid 501/20 ×3, rfu 0
  const bytes = () => {
    const b = new Uint8Array(PROC_BSDSHORTINFO_SIZE);
    const dv = new DataView(b.buffer);
    [633, 560, 560, 2].forEach((v, i) => dv.setUint32(i * 4, v, true));
    b.set(Buffer.from('plugin_host'), 16);
    dv.setUint32(32, 4, true);
    [501, 20, 501, 20, 501, 20].forEach((v, i) => dv.setUint32(36 + i * 4, v, true));
    return b;
  };
  it('flavor 13, 64 bytes; pid, ppid, comm and the effective uid at 0, 4, 16 and 36', () => {
    expect(PROC_PIDT_SHORTBSDINFO).toBe(13);
    expect(PROC_BSDSHORTINFO_SIZE).toBe(64);
    expect(Buffer.from(bytes()).toString('hex')).toBe(
      '79020000' +
        '30020000' +
        '30020000' +
        '02000000' +
        Buffer.from('plugin_host\0\0\0\0\0').toString('hex') +
        '04000000' +
        'f5010000' +
        '14000000' +
        'f5010000' +
        '14000000' +
        'f5010000' +
        '14000000' +
        '00000000',
    );
    expect(decodeBsdShortInfo(bytes(), 64)).toEqual({
      pid: 633,
      ppid: 560,
      comm: 'plugin_host',
      uid: 501,
    });
  });
  it('a comm of all 16 bytes has no NUL: cut at 16; a short answer is no answer', () => {
    const b = bytes();
    b.set(Buffer.from('com.docker.super'), 16);
    expect(decodeBsdShortInfo(b, 64)?.comm).toBe('com.docker.super');
    expect(decodeBsdShortInfo(b, 32)).toBeUndefined();
    expect(decodeBsdShortInfo(b.subarray(0, 40), 64)).toBeUndefined();
  });
});
