import { describe, expect, it } from 'vitest';
import {
  hexMaskToPrefix,
  isUtun,
  parseIfconfig,
  parseIfconfigError,
  prefixToHexMask,
} from '../../../src/platform/darwin/ifconfig.js';
import { fixture } from './fixtures.js';

const byName = (text: string) => new Map(parseIfconfig(text).map((i) => [i.name, i]));

describe('parseIfconfig', () => {
  it('10.11.6: lo0, en0 with v4+v6, flags and mtu', () => {
    const m = byName(fixture('ifconfig/ifconfig-10.11.6-jc.txt'));
    expect([...m.keys()]).toEqual(['lo0', 'gif0', 'stf0', 'en0', 'en1', 'p2p0', 'bridge0']);
    const lo = m.get('lo0')!;
    expect(lo).toMatchObject({ flagsValue: 0x8049, mtu: 16384, loopback: true, up: true });
    expect(lo.inet).toEqual([{ address: '127.0.0.1', prefixlen: 8 }]);
    expect(lo.inet6).toContainEqual({
      address: 'fe80::1',
      zone: 'lo0',
      prefixlen: 64,
      scopeId: 1,
      attrs: [],
    });
    const en0 = m.get('en0')!;
    expect(en0.ether).toBe('68:a8:6d:12:f5:75');
    expect(en0.inet).toEqual([
      { address: '192.168.1.81', prefixlen: 24, broadcast: '192.168.1.255' },
    ]);
    expect(en0.inet6.find((a) => a.attrs.includes('temporary'))).toEqual({
      address: '2600:1700:bab0:d40:c0d1:97f7:a613:3ed3',
      prefixlen: 64,
      attrs: ['autoconf', 'temporary'],
    });
    expect(en0.status).toBe('active');
    expect(m.get('stf0')).toMatchObject({ flags: [], flagsValue: 0, up: false, mtu: 1280 });
    expect(m.get('en1')!.options).toEqual(['TSO4', 'TSO6']);
    // bridge member lines must not leak into other fields
    expect(m.get('bridge0')!.inet).toEqual([]);
  });

  it('10.14.6: five system utuns with link-local inet6 only', () => {
    const m = byName(fixture('ifconfig/ifconfig-10.14.6-jc.txt'));
    const utuns = [...m.values()].filter((i) => isUtun(i.name));
    expect(utuns.map((u) => [u.name, u.mtu])).toEqual([
      ['utun0', 2000],
      ['utun1', 1380],
      ['utun2', 1380],
      ['utun3', 1380],
      ['utun4', 1380],
    ]);
    for (const u of utuns) {
      expect(u.pointToPoint).toBe(true);
      expect(u.inet).toEqual([]);
      expect(u.inet6).toHaveLength(1);
      expect(u.inet6[0]!.zone).toBe(u.name);
    }
    expect(m.get('utun4')!.inet6[0]).toMatchObject({
      address: 'fe80::8e0f:4631:2328:5209',
      scopeId: 0x14,
    });
    expect(m.get('en0')!.inet6.find((a) => a.attrs.includes('secured') && a.zone)).toMatchObject({
      address: 'fe80::8b7:1281:7499:b504',
      scopeId: 8,
    });
    expect(m.get('XHC20')).toMatchObject({ mtu: 0, flags: [] });
  });

  it('ifconfig2 10.14.6: vmnet interfaces between utuns, deprecated inet6', () => {
    const m = byName(fixture('ifconfig/ifconfig2-10.14.6-jc.txt'));
    expect(m.get('vmnet8')!.inet).toEqual([
      { address: '192.168.71.1', prefixlen: 24, broadcast: '192.168.71.255' },
    ]);
    expect(m.get('utun1')!.mtu).toBe(1380);
    expect(m.get('ap1')!.up).toBe(false);
    expect(m.get('en0')!.inet6.filter((a) => a.attrs.includes('deprecated'))).toHaveLength(2);
    expect(m.size).toBe(21);
  });

  it('utun inet with --> peer and netmask variants', () => {
    expect(parseIfconfig(fixture('ifconfig/ifconfig-utun0-cisco-vpn-xhyve.txt'))[0]).toMatchObject({
      name: 'utun0',
      mtu: 1500,
      inet: [{ address: '10.33.127.240', peer: '10.33.127.240', prefixlen: 16 }],
    });
    expect(
      parseIfconfig(fixture('ifconfig/ifconfig-utun1-dest-0.0.0.0-tun2tor.txt'))[0]!.inet,
    ).toEqual([{ address: '172.30.20.1', peer: '0.0.0.0', prefixlen: 8 }]);
    expect(parseIfconfig(fixture('ifconfig/ifconfig-utun9-xhyve.txt'))[0]).toMatchObject({
      name: 'utun9',
      mtu: 1406,
      inet: [{ address: '10.25.134.54', peer: '10.25.134.54', prefixlen: 32 }],
    });
  });

  it('classful default mask when none was given (zrok)', () => {
    const [u] = parseIfconfig(fixture('ifconfig/ifconfig-utun5-classful-mask-zrok.txt'));
    expect(u!.inet).toEqual([{ address: '10.122.0.1', peer: '10.122.0.1', prefixlen: 8 }]);
  });

  it('modern Tailscale utun4 (space-indented paste): options, /32 inet, ULA inet6', () => {
    const [u] = parseIfconfig(fixture('ifconfig/ifconfig-utun4-tailscale-modern-jc581.txt'));
    expect(u).toMatchObject({
      name: 'utun4',
      mtu: 1280,
      up: true,
      running: true,
      pointToPoint: true,
    });
    expect(u!.options).toEqual(['TSO4', 'TSO6', 'CHANNEL_IO', 'PARTIAL_CSUM', 'ZEROINVERT_CSUM']);
    expect(u!.inet).toEqual([{ address: '100.11.11.11', peer: '100.11.11.11', prefixlen: 32 }]);
    expect(u!.inet6).toEqual([
      { address: 'fe80::ab:cd:ef:12', zone: 'utun4', prefixlen: 64, scopeId: 0x18, attrs: [] },
      { address: 'fd7a:ab:cd::ef:12', prefixlen: 48, attrs: [] },
    ]);
  });

  it('destroy error is parsed, not mistaken for an interface', () => {
    const t = fixture('ifconfig/ifconfig-utun-destroy-error-sierra.txt');
    expect(parseIfconfig(t)).toEqual([]);
    expect(parseIfconfigError(t)).toEqual({
      op: 'SIOCIFDESTROY',
      message: 'Invalid argument',
      noSuchInterface: false,
    });
    expect(parseIfconfigError('ifconfig: interface utun9 does not exist\n')).toMatchObject({
      noSuchInterface: true,
    });
    expect(parseIfconfigError('')).toBeUndefined();
  });

  it('netmask helpers', () => {
    expect(hexMaskToPrefix('0xffff0000')).toBe(16);
    expect(hexMaskToPrefix('0x00000000')).toBe(0);
    expect(() => hexMaskToPrefix('0xff00ff00')).toThrow(/non-contiguous/);
    expect(prefixToHexMask(32)).toBe('0xffffffff');
    expect(prefixToHexMask(10)).toBe('0xffc00000');
  });
});
