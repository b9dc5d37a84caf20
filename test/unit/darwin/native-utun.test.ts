/**
 * Opening a utun (src/native/darwin/utun.ts): the structures passed to the kernel, byte for
 * byte, from the SDK headers' layouts (facts only): struct ctl_info (sys/kern_control.h:
 * u32 ctl_id; char ctl_name[MAX_KCTL_NAME = 96]) = 100 bytes; CTLIOCGINFO = _IOWR('N', 3,
 * struct ctl_info); struct sockaddr_ctl (sys/kern_control.h: u8 sc_len, u8 sc_family
 * (AF_SYSTEM 32), u16 ss_sysaddr (AF_SYS_CONTROL 2), u32 sc_id, u32 sc_unit, u32
 * sc_reserved[5]) = 32 bytes; UTUN_OPT_IFNAME 2 at SYSPROTO_CONTROL 2 (net/if_utun.h).
 */
import { describe, expect, it } from 'vitest';
import {
  CTLIOCGINFO,
  CTL_INFO_SIZE,
  decodeCtlInfoId,
  decodeIfname,
  encodeCtlInfo,
} from '../../../src/native/darwin/utun.js';
import {
  PF_SYSTEM,
  SYSPROTO_CONTROL,
  UTUN_CONTROL_NAME,
  UTUN_OPT_IFNAME,
  sockaddrCtl,
  utunUnit,
} from '../../../src/native/darwin/utun-abi.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('utun control socket', () => {
  it('constants', () => {
    expect([PF_SYSTEM, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, UTUN_CONTROL_NAME]).toEqual([
      32,
      2,
      2,
      'com.apple.net.utun_control',
    ]);
    expect(CTLIOCGINFO).toBe(0xc0644e03); // 0xc0000000 | 100 << 16 | 'N' << 8 | 3
  });
  it('struct ctl_info: id 0, then the control name NUL-padded to 96 bytes', () => {
    const b = encodeCtlInfo(UTUN_CONTROL_NAME);
    expect(b.length).toBe(CTL_INFO_SIZE);
    expect(hex(b)).toBe(
      '00000000' + '636f6d2e6170706c652e6e65742e7574756e5f636f6e74726f6c' + '00'.repeat(70),
    );
    // the kernel's answer: ctl_id 0x2a written little-endian in the first four bytes
    b.set([0x2a, 0x00, 0x00, 0x00], 0);
    expect(decodeCtlInfoId(b)).toBe(42);
    expect(() => decodeCtlInfoId(b.subarray(0, 99))).toThrow(/short/);
  });
  it('struct sockaddr_ctl for connect: unit N+1 for utunN, 0 for the first free one', () => {
    expect(hex(sockaddrCtl(42, utunUnit('utun4')))).toBe(
      '20' + '20' + '0200' + '2a000000' + '05000000' + '00'.repeat(20),
    );
    expect(hex(sockaddrCtl(42, 0))).toBe(
      '2020' + '0200' + '2a000000' + '00000000' + '00'.repeat(20),
    );
  });
  it('UTUN_OPT_IFNAME answer: the name up to its NUL or the returned length', () => {
    const b = new Uint8Array(16);
    b.set(Buffer.from('utun12'));
    expect(decodeIfname(b, 7)).toBe('utun12');
    expect(decodeIfname(b, 16)).toBe('utun12');
    expect(decodeIfname(b, 4)).toBe('utun');
  });
});
