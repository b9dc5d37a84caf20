import { describe, expect, it } from 'vitest';
import {
  parseScutilDns,
  parseScutilNwi,
  parseScutilShow,
  scutilSetDnsScript,
} from '../../../src/platform/darwin/scutil.js';
import {
  parseHardwarePorts,
  parseNetworksetupError,
  parseServiceList,
  parseServiceOrder,
  parseValueList,
  setDnsServersArgs,
} from '../../../src/platform/darwin/networksetup.js';
import { fixture, sections } from './fixtures.js';

describe('scutil --dns', () => {
  it('split-tunnel supplemental resolver on utun2 (eduVPN, 10.15.3)', () => {
    const rs = parseScutilDns(
      fixture('dns/scutil-dns-split-tunnel-supplemental-utun2-10.15.3-TRUNCATED.txt'),
    );
    expect(rs).toHaveLength(5);
    expect(rs[0]).toEqual({
      section: 'default',
      number: 1,
      searchDomains: [],
      nameservers: ['10.83.200.1', 'fdbf:5677:c5d:e515::1'],
      ifIndex: 13,
      ifName: 'utun2',
      flags: ['Supplemental', 'Request A records', 'Request AAAA records'],
      reach: 2,
      reachable: true,
      order: 101400,
      supplemental: true,
      scoped: false,
    });
    expect(rs[1]).toMatchObject({
      nameservers: ['8.8.8.8', '8.8.4.4'],
      ifName: 'en0',
      order: 200000,
      supplemental: false,
    });
    expect(rs[2]).toMatchObject({
      domain: 'local',
      options: 'mdns',
      timeout: 5,
      reachable: false,
      nameservers: [],
    });
  });

  it('search-domain-only resolver and scoped section (tailscale/headscale)', () => {
    const rs = parseScutilDns(
      fixture('dns/scutil-dns-tailscale-search-domains-2023-headscale.txt'),
    );
    expect(rs.map((r) => `${r.section}#${r.number}`)).toEqual([
      'default#1',
      'default#2',
      'default#8',
      'scoped#1',
    ]);
    expect(rs[0]).toMatchObject({ reach: 0x20002, reachable: true, ifIndex: 15, ifName: 'en0' });
    expect(rs[2]).toMatchObject({
      domain: 'search.tailscale',
      searchDomains: ['test.local', 'user1.ts.local'],
      nameservers: [],
    });
    expect(rs[2]!.ifIndex).toBeUndefined();
    expect(rs[3]).toMatchObject({
      scoped: true,
      nameservers: ['192.168.100.101', '192.168.100.102'],
    });
  });

  it('/etc/resolver per-domain resolvers (fragment without header)', () => {
    const rs = parseScutilDns(fixture('dns/scutil-dns-tailscaled-etc-resolver-split-FRAGMENT.txt'));
    expect(rs.map((r) => r.number)).toEqual([61, 62, 63, 64, 65, 66]);
    expect(rs.every((r) => r.nameservers[0] === '100.100.100.100' && r.order === undefined)).toBe(
      true,
    );
    expect(rs[1]!.domain).toBe('89.100.in-addr.arpa');
  });

  it('old bare Reachable/Not Reachable lines (Tunnelblick 2018)', () => {
    const rs = parseScutilDns(fixture('dns/scutil-dns-tunnelblick-utun0-old-reach-format.txt'));
    expect(rs).toHaveLength(8);
    expect(rs[1]).toMatchObject({ domain: 'local', reachable: false, order: 300000 });
    expect(rs[7]).toMatchObject({
      section: 'scoped',
      searchDomains: ['openvpn'],
      nameservers: ['8.8.8.8', '8.8.4.4'],
      ifIndex: 13,
      ifName: 'utun0',
      reachable: true,
      scoped: true,
    });
    expect(rs[7]!.reach).toBeUndefined();
  });
});

describe('scutil --nwi / show', () => {
  it('nwi fragment: utun4 primary with VPN server', () => {
    const n = parseScutilNwi(fixture('dns/scutil-nwi-surge-utun4-vpn-server-FRAGMENT.txt'));
    expect(n).toEqual({
      ipv4: [
        {
          name: 'utun4',
          flags: 5,
          flagNames: ['IPv4', 'DNS'],
          address: '198.18.0.1',
          vpnServer: '254.1.1.1',
        },
      ],
      ipv6: [],
    });
  });

  it('nwi full layout as printed by configd (format from source, not a capture)', () => {
    const text = [
      'Network information',
      '',
      'IPv4 network interface information',
      '     en0 : flags      : 0x5 (IPv4,DNS)',
      '           address    : 192.168.1.5',
      '           reach      : 0x00000002 (Reachable)',
      '',
      '   REACH : flags 0x00000002 (Reachable)',
      '',
      'IPv6 network interface information',
      '   No IPv6 states found',
      '',
      '',
      '   REACH : flags 0x00000000 (Not Reachable)',
      '',
      'Network interfaces: en0 utun4',
      '',
    ].join('\n');
    expect(parseScutilNwi(text)).toEqual({
      ipv4: [
        { name: 'en0', flags: 5, flagNames: ['IPv4', 'DNS'], address: '192.168.1.5', reach: 2 },
      ],
      ipv6: [],
      interfaces: ['en0', 'utun4'],
    });
  });

  it('show State:/Network/Global/IPv4', () => {
    expect(parseScutilShow(fixture('dns/scutil-show-global-ipv4-utun-primary.txt'))).toEqual({
      PrimaryInterface: 'utun4',
      PrimaryService: '32A30073-9328-4F0F-BF03-D63367E18584',
      Router: '198.18.0.1',
    });
    expect(parseScutilShow('  No such key\n')).toBeUndefined();
    expect(
      parseScutilShow(
        '<dictionary> {\n  ServerAddresses : <array> {\n    0 : 10.0.0.1\n    1 : 10.0.0.2\n  }\n}\n',
      ),
    ).toEqual({ ServerAddresses: ['10.0.0.1', '10.0.0.2'] });
  });

  it('set script for a supplemental resolver', () => {
    expect(
      scutilSetDnsScript(
        'State:/Network/Service/com.awg.awg-work/DNS',
        ['10.0.0.1'],
        ['corp.example'],
      ),
    ).toBe(
      'd.init\nd.add ServerAddresses * 10.0.0.1\nd.add SupplementalMatchDomains * corp.example\nd.add SearchDomains * corp.example\nset State:/Network/Service/com.awg.awg-work/DNS\nquit\n',
    );
  });
});

describe('networksetup', () => {
  it('-listallnetworkservices', () => {
    expect(
      parseServiceList(fixture('dns/networksetup-listallnetworkservices-2023-mageddo.txt')),
    ).toEqual([
      { name: 'USB 10/100/1000 LAN', disabled: false },
      { name: 'Wi-Fi', disabled: false },
      { name: 'Thunderbolt Bridge', disabled: false },
    ]);
    const old = parseServiceList(
      fixture('dns/networksetup-listallnetworkservices-2014-vpn-services.txt'),
    );
    expect(old.map((s) => s.name)).toContain('VPN (PPTP)');
    expect(old).toHaveLength(7);
    expect(
      parseServiceList(`An asterisk (*) denotes that a network service is disabled.\n*Wi-Fi\n`),
    ).toEqual([{ name: 'Wi-Fi', disabled: true }]);
  });

  it('-listnetworkserviceorder maps services to devices', () => {
    const o = parseServiceOrder(fixture('dns/networksetup-listnetworkserviceorder-15.7.1.txt'));
    expect(o).toHaveLength(6);
    expect(o[3]).toEqual({
      order: 4,
      name: 'USB 10/100/1000 LAN 2',
      disabled: false,
      hardwarePort: 'USB 10/100/1000 LAN',
      device: 'en11',
    });
    expect(o[5]).toMatchObject({ name: 'Wi-Fi', device: 'en0' });
  });

  it('-listallhardwareports', () => {
    const p = parseHardwarePorts(
      fixture('dns/networksetup-listallhardwareports-2020-nonocast.txt'),
    );
    expect(p).toHaveLength(6);
    expect(p[0]).toEqual({ port: 'Wi-Fi', device: 'en0', ether: '8c:85:90:90:6d:26' });
    expect(p[5]).toMatchObject({ port: 'Thunderbolt Bridge', device: 'bridge0' });
  });

  it('-getdnsservers: set, empty (with and without trailing space)', () => {
    expect(
      parseValueList(fixture('dns/networksetup-getdnsservers-wifi-set-2023-mageddo.txt')),
    ).toEqual(['8.8.8.8', '8.8.4.4']);
    expect(
      parseValueList(fixture('dns/networksetup-getdnsservers-wifi-empty-2023-mageddo.txt')),
    ).toEqual([]);
    expect(
      parseValueList(fixture('dns/networksetup-getdnsservers-wifi-empty-2014-kodango.txt')),
    ).toEqual([]);
    const ar = sections('dns/networksetup-getadditionalroutes-none-2020.txt');
    expect(parseValueList(ar.get('before')!.text)).toEqual([]);
  });

  it('error text on stdout', () => {
    expect(
      parseNetworksetupError(fixture('dns/networksetup-error-unrecognized-service-crc.txt')),
    ).toEqual({ unknownService: '*Wi-Fi', message: 'The parameters were not valid.' });
    expect(parseNetworksetupError('8.8.8.8\n')).toBeUndefined();
  });

  it('setter argv', () => {
    expect(setDnsServersArgs('Wi-Fi', ['10.64.0.1'])).toEqual([
      '-setdnsservers',
      'Wi-Fi',
      '10.64.0.1',
    ]);
    expect(setDnsServersArgs('USB 10/100/1000 LAN', [])).toEqual([
      '-setdnsservers',
      'USB 10/100/1000 LAN',
      'Empty',
    ]);
  });
});
