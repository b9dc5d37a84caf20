/**
 * The model host answers in the captured formats: its `netstat -rn` of the initial laptop is
 * the captured table row for row (without the VPN's rows, plus the scoped default), its
 * `ifconfig` has the 10.14.6 capture's layout, its pfctl and networksetup messages are the
 * captured ones; and what it prints reads back, through the project's parsers, as the state
 * it holds. A model that printed a friendlier format than macOS would let a parser gap pass.
 */
import { describe, expect, it } from 'vitest';
import { parseIfconfig } from '../../../src/platform/darwin/ifconfig.js';
import { parseNetstatRoutes } from '../../../src/platform/darwin/netstat.js';
import { parseServiceList, parseValueList } from '../../../src/platform/darwin/networksetup.js';
import { parseScutilDns } from '../../../src/platform/darwin/scutil.js';
import { parseRouteGet } from '../../../src/platform/darwin/route.js';
import { parsePfInfo } from '../../../src/platform/darwin/pfctl.js';
import { parseServiceOrder } from '../../../src/platform/darwin/networksetup.js';
import { parseSysctl } from '../../../src/platform/darwin/sysctl.js';
import { capture, LAPTOP_NETSTAT, MacHost } from '../../helpers/macos-host/model.js';
import { dnctlArgs, parseDnctlError, parseDnctlList } from '../../../src/platform/darwin/dnctl.js';
import { sections } from './fixtures.js';

const lines = (t: string) =>
  t
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean);

describe('macOS host model: output formats', () => {
  it('netstat -rn of the laptop is the captured table, row for row', async () => {
    const h = MacHost.laptop();
    const got = lines((await h.read('netstat', ['-rn'])).stdout);
    const want = lines(capture(LAPTOP_NETSTAT)).filter(
      (l) => !/utun2|^192\.168\.1\.51 +192\.168\.1\.1 /.test(l),
    );
    // the model adds the interface-scoped default after the primary one, and an empty Internet6 section
    expect(got.filter((l) => !/UGScIg/.test(l)).slice(0, want.length)).toEqual(want);
    expect(got).toContain('default            192.168.1.1        UGScIg         en0');
  });

  it('routes the drivers add print as netstat abbreviates them and parse back to the same prefixes', async () => {
    const h = MacHost.laptop();
    h.createUtun();
    for (const a of [
      ['-n', 'add', '-inet', '-net', '0.0.0.0/1', '-interface', 'utun0'],
      ['-n', 'add', '-inet', '-net', '128.0.0.0/1', '-interface', 'utun0'],
      ['-n', 'add', '-inet', '-net', '10.66.0.0/16', '-interface', 'utun0'],
      ['-n', 'add', '-inet', '-net', '172.16.0.0/12', '-interface', 'utun0'],
      ['-n', 'add', '-inet', '-host', '198.51.100.7', '192.168.1.1'],
    ])
      await h.mutate('route', a);
    const text = (await h.read('netstat', ['-rn'])).stdout;
    for (const d of ['0/1 ', '128.0/1 ', '10.66/16 ', '172.16/12 ', '198.51.100.7 '])
      expect(text).toMatch(new RegExp(`^${d.replace(/\./g, '\\.')}`, 'm'));
    const parsed = parseNetstatRoutes(text).filter(
      (r) => r.netif === 'utun0' || r.destination === '198.51.100.7',
    );
    expect(parsed.map((r) => r.dst)).toEqual([
      '0.0.0.0/1',
      '10.66.0.0/16',
      '128.0.0.0/1',
      '172.16.0.0/12',
      '198.51.100.7/32',
    ]);
    expect(
      parseNetstatRoutes(text)
        .filter((r) => r.isDefault)
        .map((r) => r.ifscope),
    ).toEqual([false, true]);
  });

  it('ifconfig has the capture layout and parses back to the model interfaces', async () => {
    const h = MacHost.laptop();
    const u = h.createUtun();
    await h.mutate('ifconfig', [
      u,
      'inet',
      '10.66.0.2',
      '10.66.0.2',
      'netmask',
      '0xffffffff',
      'alias',
    ]);
    await h.mutate('ifconfig', [u, 'mtu', '1420']);
    const text = (await h.read('ifconfig', [])).stdout;
    const cap = capture('ifconfig/ifconfig-10.14.6-jc.txt');
    expect(text).toContain(lines(cap).find((l) => l.startsWith('en0: '))!);
    expect(text).toContain(lines(cap).find((l) => l.startsWith('lo0: '))!);
    expect(text).toContain('utun0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1420');
    expect(text).toContain('\tinet 10.66.0.2 --> 10.66.0.2 netmask 0xffffffff');
    const ifs = parseIfconfig(text);
    expect(
      ifs.map((i) => [i.name, i.mtu, i.inet.map((a) => `${a.address}/${a.prefixlen}`)]),
    ).toEqual([
      ['lo0', 16384, ['127.0.0.1/8']],
      ['en0', 1500, ['192.168.1.175/24']],
      ['utun0', 1420, ['10.66.0.2/32']],
    ]);
  });

  it("networksetup lists and DNS getters are the captured texts (disabled service with '*', \"There aren't any …\")", async () => {
    const h = MacHost.laptop();
    const list = (await h.read('networksetup', ['-listallnetworkservices'])).stdout;
    expect(list.split('\n')[0]).toBe(
      lines(capture('dns/networksetup-listallnetworkservices-2023-mageddo.txt'))[0],
    );
    expect(parseServiceList(list)).toEqual([
      { name: 'Wi-Fi', disabled: false },
      { name: 'Thunderbolt Bridge', disabled: false },
      { name: 'iPhone USB', disabled: true },
    ]);
    const empty = (await h.read('networksetup', ['-getdnsservers', 'Wi-Fi'])).stdout;
    expect(empty).toBe(capture('dns/networksetup-getdnsservers-wifi-empty-2023-mageddo.txt'));
    expect(parseValueList(empty)).toEqual([]);
    const bad = await h.read('networksetup', ['-getdnsservers', 'Nope'], { allowFail: true });
    expect(bad.code).toBe(4);
  });

  it("scutil --dns: the primary service's DHCP resolver while its list is Empty, its manual list once set, supplemental resolvers from the store", async () => {
    const h = MacHost.laptop();
    const dns = async () => parseScutilDns((await h.read('scutil', ['--dns'])).stdout);
    const cap = capture('dns/scutil-dns-split-tunnel-supplemental-utun2-10.15.3-TRUNCATED.txt');
    const text = (await h.read('scutil', ['--dns'])).stdout;
    // the capture's mDNS resolver block, verbatim
    expect(text).toContain(
      cap.slice(cap.indexOf('  domain   : local'), cap.indexOf('resolver #4')),
    );
    let r = (await dns()).filter((x) => x.section === 'default' && !x.domain);
    expect(r.map((x) => [x.nameservers, x.searchDomains, x.ifName])).toEqual([
      [['192.168.1.1'], ['home.arpa'], 'en0'],
    ]);
    await h.mutate('networksetup', ['-setdnsservers', 'Wi-Fi', '10.66.0.1']);
    await h.mutate('scutil', [], {
      input:
        'd.init\nd.add ServerAddresses * 10.77.0.1\nd.add SupplementalMatchDomains * corp.example\nset State:/Network/Service/com.awg.awg-work/DNS\nquit\n',
    });
    const all = await dns();
    r = all.filter((x) => x.section === 'default' && !x.domain);
    expect(r.map((x) => x.nameservers)).toEqual([['10.66.0.1']]);
    expect(all.find((x) => x.domain === 'corp.example')).toMatchObject({
      supplemental: true,
      nameservers: ['10.77.0.1'],
    });
    expect(all.filter((x) => x.section === 'scoped').map((x) => [x.scoped, x.nameservers])).toEqual(
      [[true, ['10.66.0.1']]],
    );
  });

  it('route get, netstat -f, pfctl -s info, the service order and sysctl answer in the captured layouts', async () => {
    const h = MacHost.laptop();
    const cap = lines(capture('routes/route-get-0-default-en0-neofetch.txt'));
    const got = lines((await h.read('route', ['-n', 'get', 'default'])).stdout);
    expect(got.map((l) => l.replace(/: .*/, ':'))).toEqual(cap.map((l) => l.replace(/: .*/, ':')));
    expect(
      parseRouteGet((await h.read('route', ['-n', 'get', '93.184.216.34'])).stdout),
    ).toMatchObject({ destination: 'default', gateway: '192.168.1.1', interface: 'en0' });
    h.createUtun();
    await h.mutate('route', ['-n', 'add', '-inet', '-net', '0.0.0.0/1', '-interface', 'utun0']);
    expect(parseRouteGet((await h.read('route', ['-n', 'get', '8.8.8.8'])).stdout)).toMatchObject({
      interface: 'utun0',
      mask: '128.0.0.0',
    });
    expect((await h.read('netstat', ['-rn', '-f', 'inet'])).stdout).not.toContain('Internet6:');
    expect(parseNetstatRoutes((await h.read('netstat', ['-rn', '-f', 'inet6'])).stdout)).toEqual(
      [],
    );

    expect(parsePfInfo((await h.read('pfctl', ['-s', 'info'])).stdout)).toMatchObject({
      enabled: false,
    });
    expect((await h.read('pfctl', ['-s', 'info'])).stdout.split('\n')[0]).toBe(
      lines(capture('pf/pfctl-s-info-disabled-macos26.txt'))[0],
    );
    await h.mutate('pfctl', ['-E']);
    expect(parsePfInfo((await h.read('pfctl', ['-s', 'info'])).stdout)).toMatchObject({
      enabled: true,
    });

    expect(
      parseServiceOrder((await h.read('networksetup', ['-listnetworkserviceorder'])).stdout).map(
        (s) => [s.name, s.device, s.disabled],
      ),
    ).toEqual([
      ['Wi-Fi', 'en0', false],
      ['Thunderbolt Bridge', 'bridge0', false],
      ['iPhone USB', 'en5', true],
    ]);

    expect(parseSysctl((await h.read('sysctl', ['net.inet.ip.forwarding'])).stdout)).toEqual([
      { key: 'net.inet.ip.forwarding', value: '0' },
    ]);
    expect((await h.mutate('sysctl', ['-w', 'net.inet.ip.forwarding=1'])).stdout).toBe(
      'net.inet.ip.forwarding: 0 -> 1\n',
    );
    expect((await h.read('sysctl', ['-n', 'net.inet.ip.forwarding'])).stdout).toBe('1\n');
    expect((await h.read('sysctl', ['net.inet.ip.fw.enable'], { allowFail: true })).stderr).toBe(
      "sysctl: unknown oid 'net.inet.ip.fw.enable'\n",
    );
  });

  it("dnctl list prints a pipe as the captures do (the 512 Kbit/s script's pipe byte for byte, NLC's parameters) and parses back to what was configured", async () => {
    const h = MacHost.laptop();
    await h.mutate('dnctl', ['pipe', '1', 'config', 'bw', '512Kbit/s']);
    const script = capture('dummynet/dnctl-flush-pfctl-E-list-512kbit-2019.txt');
    expect((await h.read('dnctl', ['list'])).stdout).toBe(script.slice(script.indexOf('00001:')));
    const nlc = new MacHost();
    for (const n of ['40269', '40270'])
      await nlc.mutate('dnctl', [
        'pipe',
        n,
        'config',
        'bw',
        '1Mbit/s',
        'delay',
        '500',
        'plr',
        '0.1',
      ]);
    // the capture's pipes had passed packets (`1 queues`); the model forwards none
    expect((await nlc.read('dnctl', ['list'])).stdout).toBe(
      sections('dummynet/dnctl-list-nlc-pipes-and-pfctl-s-dummynet-superuser.txt')
        .get('dnctl list')!
        .text.replace(/1 queues/g, '0 queues'),
    );
    await h.mutate('dnctl', dnctlArgs.config({ pipe: 45056, bandwidth: 20_000_000, queueKB: 25 }));
    await h.mutate('dnctl', dnctlArgs.config({ pipe: 45057, bandwidth: 8000, queueKB: 3 }));
    expect(
      parseDnctlList((await h.read('dnctl', ['list'])).stdout).map((p) => [
        p.pipe,
        p.bandwidthText,
        p.bandwidth,
        p.queueText,
      ]),
    ).toEqual([
      [1, '512.000 Kbit/s', 512000, '50 sl.'],
      [45056, '20.000 Mbit/s', 20_000_000, '25 KB'],
      [45057, '8.000 Kbit/s', 8000, '3072 B'],
    ]);
    // a missing pipe's delete and a user's dnctl: dnctl.c's messages
    expect(await h.mutate('dnctl', ['pipe', 'delete', '7'], { allowFail: true })).toEqual({
      stdout: '',
      stderr: 'dnctl: rule 7: setsockopt(IP_DUMMYNET_DEL): Invalid argument\n',
      code: 1,
    });
    h.root = false;
    expect(
      parseDnctlError((await h.read('dnctl', ['list'], { allowFail: true })).stderr)?.kind,
    ).toBe('permission');
  });

  it('an unknown command or argument list fails the test instead of passing', async () => {
    const h = MacHost.laptop();
    await expect(h.read('netstat', ['-an'])).rejects.toThrow(/macos-host/);
    await expect(h.mutate('route', ['-n', 'flush'])).rejects.toThrow(/macos-host/);
    await expect(h.mutate('pfctl', ['-d'])).rejects.toThrow(/macos-host/);
    await expect(h.read('pfctl', ['-E'])).rejects.toThrow(/changes the system/);
    await expect(h.mutate('ifconfig', ['en0', 'inet', '10.0.0.1'])).rejects.toThrow(/macos-host/);
    await expect(h.read('ipconfig', ['getifaddr', 'en0'])).rejects.toThrow(/unknown command/);
    await expect(
      h.mutate('launchctl', ['load', '-w', '/Library/LaunchDaemons/x.plist']),
    ).rejects.toThrow(/macos-host/);
  });
});
