/**
 * The byte layouts the macOS koffi bindings pass to the kernel (src/native/darwin/), tested
 * on bytes written out from the SDK headers' documented structures. No Mac runs these
 * tests' counterparts: the calls themselves are verified nowhere (docs/platform-macos.md).
 */
import { describe, expect, it } from 'vitest';
import {
  CTLIOCGINFO,
  DIOCNATLOOK,
  IPV6_BOUND_IF,
  IP_BOUND_IF,
  PFIOC_NATLOOK_SIZE,
  SIOCGIFMTU,
  decodeCtlInfoId,
  decodeIfname,
  decodeIfreqMtu,
  decodeNatlook,
  decodePath,
  decodePids,
  encodeBoundIf,
  encodeCtlInfo,
  encodeIfreq,
  encodeNatlook,
  encodeRtmGet,
  encodeSockaddr,
  iowr,
} from '../../../src/native/darwin/layouts.js';
import { D, libSystem } from '../../../src/native/darwin/libsystem.js';
import { decodeRouteMessage } from '../../../src/platform/darwin/rtmsg.js';
import { bytes } from './fixtures.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('ioctl numbers (_IOWR: 0xc0000000 | size << 16 | group << 8 | num)', () => {
  it('CTLIOCGINFO, SIOCGIFMTU, DIOCNATLOOK', () => {
    expect(CTLIOCGINFO).toBe(0xc0644e03); // ctl_info 100 bytes, 'N' 3
    expect(SIOCGIFMTU).toBe(0xc0206933); // ifreq 32 bytes, 'i' 51
    expect(DIOCNATLOOK).toBe(0xc0544417); // pfioc_natlook 84 bytes, 'D' 23
    expect(iowr('D', 23, 84).toString(16)).toBe('c0544417');
  });
});

describe('struct ctl_info', () => {
  it('u32 id then the NUL-padded 96-byte name', () => {
    const b = encodeCtlInfo('com.apple.net.utun_control');
    expect(b.length).toBe(100);
    expect(hex(b.subarray(0, 4))).toBe('00000000');
    expect(Buffer.from(b.subarray(4, 30)).toString()).toBe('com.apple.net.utun_control');
    expect([...b.subarray(30)].every((x) => x === 0)).toBe(true);
    b.set([0x07, 0x00, 0x00, 0x00], 0); // the kernel's answer: control id 7, little-endian
    expect(decodeCtlInfoId(b)).toBe(7);
    expect(() => encodeCtlInfo('x'.repeat(96))).toThrow(/longer than 95/);
  });
});

describe('struct ifreq (32 bytes on darwin)', () => {
  it('name at 0, ifru_mtu int at 16', () => {
    const b = encodeIfreq('utun4');
    expect(hex(b)).toBe(`${Buffer.from('utun4').toString('hex')}${'00'.repeat(27)}`);
    b.set([0x8c, 0x05, 0, 0], 16);
    expect(decodeIfreqMtu(b)).toBe(1420);
    expect(() => encodeIfreq('a'.repeat(16))).toThrow(/bad interface name/);
  });
  it('UTUN_OPT_IFNAME answer', () => {
    expect(decodeIfname(new Uint8Array([...Buffer.from('utun7'), 0, 0, 0]), 6)).toBe('utun7');
  });
});

describe('routing socket: RTM_GET request', () => {
  it('92-byte rt_msghdr, version 5, RTA_DST|RTA_IFP, sockaddr_in padded to 4, an empty sockaddr_dl', () => {
    const b = encodeRtmGet('1.2.3.4', 9, 321);
    expect(b.length).toBe(92 + 16 + 20);
    expect(hex(b.subarray(0, 24))).toBe(
      '8000' + '05' + '04' + '0000' + '0000' + '00000000' + '11000000' + '41010000' + '09000000',
    );
    expect(hex(b.subarray(92))).toBe(
      '10020000' + '01020304' + '0000000000000000' + '1412' + '00'.repeat(18),
    );
    const m = decodeRouteMessage(b);
    expect(m.sockaddrs.ifp).toMatchObject({ family: 'link', name: '' });
    expect(m).toMatchObject({
      msglen: 128,
      version: 5,
      typeName: 'RTM_GET',
      addrs: 0x11,
      pid: 321,
      seq: 9,
    });
    expect(m.sockaddrs.dst).toEqual({ family: 'inet', address: '1.2.3.4' });
  });
  it('sockaddr_in6 is 28 bytes (padded to 28), AF_INET6 = 30', () => {
    const sa = encodeSockaddr('2001:db8::1');
    expect(hex(sa)).toBe('1c1e0000' + '00000000' + '20010db8000000000000000000000001' + '00000000');
    const m = decodeRouteMessage(encodeRtmGet('2001:db8::1', 1));
    expect(m.msglen).toBe(140);
    expect(m.sockaddrs.dst).toMatchObject({ family: 'inet6', address: '2001:db8::1' });
  });
  it('the header layout matches a captured kernel message (mullvad RTM_ADD)', () => {
    const cap = bytes('binary/rtm-add-bytes-mullvad-test-failing-rtmsg.txt');
    const ours = encodeRtmGet('192.168.88.0', 0);
    expect(ours[2]).toBe(cap[2]); // RTM_VERSION
    expect(decodeRouteMessage(cap).sockaddrs.dst).toEqual(decodeRouteMessage(ours).sockaddrs.dst);
  });
});

describe('struct pfioc_natlook (84 bytes)', () => {
  it('client in saddr/sxport, listener in daddr/dxport, af, proto, PF_OUT; the answer in rdaddr/rdxport', () => {
    const b = encodeNatlook(
      { address: '192.168.1.175', port: 52000 },
      { address: '127.0.0.1', port: 1081 },
    );
    expect(b.length).toBe(PFIOC_NATLOOK_SIZE);
    expect(hex(b.subarray(0, 4))).toBe('c0a801af');
    expect(hex(b.subarray(16, 20))).toBe('7f000001');
    expect(hex(b.subarray(64, 72))).toBe('cb200000' + '04390000');
    expect(hex(b.subarray(80))).toBe('02' + '06' + '00' + '02');
    b.set([93, 184, 216, 34], 48);
    b.set([0x01, 0xbb], 76);
    expect(decodeNatlook(b)).toEqual({ address: '93.184.216.34', port: 443 });
  });
  it('IPv6: AF_INET6 30, 16-byte addresses', () => {
    const b = encodeNatlook({ address: '::1', port: 1 }, { address: '::1', port: 2 });
    expect(b[80]).toBe(30);
    b.set(Buffer.from('20010db8000000000000000000000002', 'hex'), 48);
    expect(decodeNatlook(b).address).toBe('2001:db8::2');
    expect(() =>
      encodeNatlook({ address: '::1', port: 1 }, { address: '127.0.0.1', port: 2 }),
    ).toThrow(/families/);
  });
});

describe('libproc and IP_BOUND_IF', () => {
  it('proc_listallpids: little-endian pid_t, count bounded by the buffer', () => {
    const b = Buffer.from('01000000' + 'f4010000' + '00000000' + '39300000', 'hex');
    expect(decodePids(b, 4)).toEqual([1, 500, 12345]);
    expect(decodePids(b, 99)).toEqual([1, 500, 12345]);
  });
  it('proc_pidpath: the returned length or the NUL, whichever first', () => {
    const b = new Uint8Array(4096);
    b.set(Buffer.from('/Applications/Firefox.app/Contents/MacOS/firefox'));
    expect(decodePath(b, 48)).toBe('/Applications/Firefox.app/Contents/MacOS/firefox');
    expect(decodePath(b, 4)).toBe('/App');
    expect(decodePath(b, 0)).toBeUndefined();
  });
  it('IP_BOUND_IF 25 / IPV6_BOUND_IF 125 take the index as an int', () => {
    expect([IP_BOUND_IF, IPV6_BOUND_IF]).toEqual([25, 125]);
    expect(hex(encodeBoundIf(11))).toBe('0b000000');
    expect(() => encodeBoundIf(0)).toThrow();
  });
});

describe('libSystem bindings', () => {
  it('darwin constants that differ from Linux', () => {
    expect(D).toMatchObject({
      O_NONBLOCK: 4,
      AF_INET6: 30,
      SOL_SOCKET: 0xffff,
      EAGAIN: 35,
      PF_ROUTE: 17,
      SOCK_RAW: 3,
    });
  });
  it('load only on darwin: elsewhere unsupported, and importing loads nothing', () => {
    expect(() => libSystem('linux')).toThrow(expect.objectContaining({ kind: 'unsupported' }));
  });
});
