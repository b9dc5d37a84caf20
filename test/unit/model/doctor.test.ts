/**
 * `awg doctor`'s analysis on fixture observations (model/doctor.ts) and the Linux gatherer's
 * parsers on outputs captured from a namespace with a wireguard-go link, wg-quick's rules and
 * two foreign nft tables (test/fixtures/doctor/), plus nmcli's and systemctl's text formats.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  diagnose,
  FINDING_IDS,
  nmUnmanages,
  type DoctorObservation,
} from '../../../src/model/doctor.js';
import {
  keyfileUnmanaged,
  parseDefaultRoutes,
  parseLinks,
  parseNftTables,
  parseNmcli,
  parseRules,
  parseShowUnits,
} from '../../../src/resources/platform/linux-doctor.js';
import { renderNmDropin } from '../../../src/resources/service/networkmanager.js';

const FIX = join(import.meta.dirname, '../../fixtures/doctor');
const fixture = (f: string) => readFileSync(join(FIX, f), 'utf8');

const unit = (name: string, active: string, enabled: string) => ({ name, active, enabled });

/** a Debian 12 desktop where awg runs as the package sets it up: nothing to report */
function clean(): DoctorObservation {
  return {
    links: [
      { name: 'lo', ours: false },
      { name: 'eth0', ours: false },
      { name: 'awg-vpn', kind: 'tun', ours: true },
    ],
    defaultRoutes: [
      { family: 4, dst: 'default', dev: 'eth0', table: 'main' },
      { family: 4, dst: 'default', dev: 'awg-vpn', table: '52000' },
    ],
    rules: [
      { family: 4, priority: 5200, fwmark: '0x1000000/0xf000000', table: '52000', protocol: '167' },
    ],
    nft: [{ family: 'inet', table: 'awg', chains: ['route_out', 'filter_out'] }],
    systemd: {
      quickUnits: [unit('wg-quick@old.service', 'inactive', 'disabled')],
      units: {
        'awg.service': unit('awg.service', 'active', 'enabled'),
        'awg-killswitch.service': unit('awg-killswitch.service', 'active', 'enabled'),
        'systemd-resolved.service': unit('systemd-resolved.service', 'active', 'enabled'),
        'NetworkManager.service': unit('NetworkManager.service', 'active', 'enabled'),
      },
    },
    nm: {
      devices: [
        { device: 'eth0', type: 'ethernet', state: 'connected', connection: 'Wired 1' },
        { device: 'awg-vpn', type: 'tun', state: 'unmanaged', connection: '' },
      ],
      active: [{ name: 'Wired 1', type: '802-3-ethernet', device: 'eth0' }],
      unmanagedDevices: 'interface-name:awg-*;interface-name:awgq-*',
    },
    resolvConfStub: true,
    claims: { linkPrefix: 'awg-', routeProtocol: 167, rulePriority: 5200 },
    config: { file: '/etc/awg/config.yaml', killSwitch: true, dnsSystem: 'default-tunnel' },
  };
}

const ids = (o: DoctorObservation) =>
  diagnose(o).findings.map((f) => `${f.severity} ${f.id} ${f.subject}`);

describe('awg doctor: the analysis', () => {
  it('a host set up as the package does: no finding, nothing skipped', () => {
    expect(diagnose(clean())).toEqual({ findings: [], skipped: [] });
  });

  it('every conflict it knows, each with a stable id, a severity, one line of what and one of what to do', () => {
    const o = clean();
    o.links.push(
      { name: 'wg0', kind: 'wireguard', ours: false },
      { name: 'tun0', kind: 'tun', ours: false },
    );
    o.defaultRoutes.push(
      { family: 4, dst: 'default', dev: 'wg0', table: '51820' },
      { family: 4, dst: '0.0.0.0/1', dev: 'tun0', table: 'main' },
      { family: 6, dst: '::/0', dev: 'wg0', table: '51820' },
    );
    o.rules.push(
      { family: 4, priority: 32764, fwmark: '0xca6c', not: true, table: '51820' },
      { family: 4, priority: 5210, fwmark: '0x80000/0xff0000', table: 'main' },
      { family: 4, priority: 100, fwmark: '0x6d6f6c65', table: '1836018789' },
    );
    o.nft!.push(
      { family: 'inet', table: 'mullvad', chains: ['output'] },
      { family: 'ip', table: 'filter', chains: ['ts-input', 'INPUT'] },
      { family: 'ip', table: 'nat', chains: ['POSTROUTING'] },
    );
    o.systemd!.quickUnits.push(
      unit('wg-quick@wg0.service', 'active', 'enabled'),
      unit('awg-quick@home.service', 'inactive', 'enabled'),
    );
    o.systemd!.units['awg.service'] = unit('awg.service', 'inactive', 'disabled');
    delete o.systemd!.units['awg-killswitch.service'];
    o.nm!.devices[1] = {
      device: 'awg-vpn',
      type: 'tun',
      state: 'connected (externally)',
      connection: 'awg-vpn',
    };
    o.nm!.active.push(
      { name: 'office', type: 'wireguard', device: 'office' },
      { name: 'corp', type: 'vpn', device: 'eth0' },
    );
    const all = diagnose(o).findings;
    expect(all.map((f) => `${f.severity} ${f.id} ${f.subject}`)).toEqual([
      'error foreign-default-route wg0',
      'error foreign-default-route tun0',
      'warning foreign-fwmark-rule rule 32764',
      'warning foreign-fwmark-rule rule 5210',
      'error foreign-fwmark-rule rule 100',
      'warning foreign-firewall nft table inet mullvad',
      'warning foreign-firewall nft table ip filter',
      'error wg-quick-unit wg-quick@wg0.service',
      'warning wg-quick-unit awg-quick@home.service',
      'info service-disabled awg.service',
      'warning killswitch-unit-disabled awg-killswitch.service',
      'error nm-manages-link awg-vpn',
      'error nm-vpn-active office',
      'error nm-vpn-active corp',
    ]);
    for (const f of all) {
      expect(FINDING_IDS).toContain(f.id);
      expect(f.what).not.toMatch(/\n/);
      expect(f.fix).not.toMatch(/\n/);
      expect(f.fix.length).toBeGreaterThan(10);
    }
    expect(all.find((f) => f.id === 'wg-quick-unit')!.fix).toBe(
      'systemctl disable --now wg-quick@wg0.service; `awg import` converts its config',
    );
    expect(all.find((f) => f.subject === 'tun0')!.what).toContain('0.0.0.0/1 in table main');
  });

  it('resolved: a stub resolv.conf without resolved is an error; resolved bypassed under dns.system default-tunnel a warning', () => {
    const o = clean();
    o.systemd!.units['systemd-resolved.service'] = unit(
      'systemd-resolved.service',
      'inactive',
      'disabled',
    );
    expect(ids(o)).toEqual(['error resolved-not-running /etc/resolv.conf']);
    const p = clean();
    p.resolvConfStub = false;
    expect(ids(p)).toEqual(['warning resolved-bypassed /etc/resolv.conf']);
    p.config!.dnsSystem = 'keep';
    expect(ids(p)).toEqual([]);
  });

  it("NetworkManager's unmanaged-devices: no link of ours yet and the prefix not covered is a warning", () => {
    const o = clean();
    o.nm!.devices = o.nm!.devices.filter((d) => d.device !== 'awg-vpn');
    o.nm!.unmanagedDevices = 'interface-name:docker*';
    expect(ids(o)).toEqual(['warning nm-unmanaged-missing NetworkManager']);
    expect(diagnose(o).findings[0]!.fix).toContain('unmanaged-devices+=interface-name:awg-*');
    // what our drop-in appends covers it
    o.nm!.unmanagedDevices = renderNmDropin().match(/unmanaged-devices\+=(.*)/)![1]!;
    expect(ids(o)).toEqual([]);
    expect(nmUnmanages('interface-name:docker*', 'awg-x')).toBe(false);
  });

  it('what could not be observed is skipped and named, never guessed', () => {
    const o = clean();
    delete o.systemd;
    delete o.nm;
    delete o.nft;
    const r = diagnose(o);
    expect(r.findings).toEqual([]);
    expect(r.skipped).toEqual([
      'foreign-firewall: nft could not be read',
      'wg-quick-unit, service-disabled, killswitch-unit-disabled: systemd is not running',
      'nm-manages-link, nm-vpn-active, nm-unmanaged-missing: NetworkManager is not running',
      'resolved-not-running, resolved-bypassed: systemd is not running',
    ]);
  });
});

describe('awg doctor: the Linux gatherer parsers (captured outputs)', () => {
  it("ip -j -d link, route and rule: wireguard-go's wg0 (a TUN) with its default route in table 51820, wg-quick's rules", () => {
    expect(parseLinks(fixture('ip-link.json'))).toEqual([
      { name: 'lo', ours: false },
      { name: 'wg0', kind: 'tun', ours: false },
      { name: 'awg-vpn', kind: 'tun', ours: true },
    ]);
    expect(parseDefaultRoutes(fixture('ip-route4.json'), 4)).toEqual([
      { family: 4, dst: 'default', dev: 'wg0', table: '51820' },
    ]);
    expect(parseRules(fixture('ip-rule4.json'), 4).filter((r) => r.fwmark)).toEqual([
      { family: 4, priority: 32764, fwmark: '0xca6c', not: true, table: '51820' },
    ]);
  });

  it('nft -j list tables / chains', () => {
    expect(parseNftTables(fixture('nft-tables.json'), fixture('nft-chains.json'))).toEqual([
      { family: 'inet', table: 'mullvad', chains: ['output'] },
      { family: 'ip', table: 'filter', chains: ['ts-input'] },
    ]);
  });

  it('systemctl show of several units; nmcli -t with escaped colons; NetworkManager --print-config', () => {
    expect(
      parseShowUnits(
        'Id=awg.service\nActiveState=active\nUnitFileState=enabled\n\nId=wg-quick@wg0.service\nActiveState=inactive\nUnitFileState=disabled\n',
      ),
    ).toEqual([
      unit('awg.service', 'active', 'enabled'),
      unit('wg-quick@wg0.service', 'inactive', 'disabled'),
    ]);
    expect(
      parseNmcli(
        'eth0:ethernet:connected:Wired connection 1\nawg-vpn:tun:connected (externally):awg-vpn\nx:y:z:a\\:b\\\\c\n',
      ),
    ).toEqual([
      ['eth0', 'ethernet', 'connected', 'Wired connection 1'],
      ['awg-vpn', 'tun', 'connected (externally)', 'awg-vpn'],
      ['x', 'y', 'z', 'a:b\\c'],
    ]);
    const conf =
      '# NetworkManager configuration: /etc/NetworkManager/NetworkManager.conf (lib: awg-unmanaged.conf)\n\n[main]\n# rc-manager=symlink\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n\n[keyfile]\nunmanaged-devices=interface-name:awg-*;interface-name:awgq-*\n';
    expect(keyfileUnmanaged(conf)).toBe('interface-name:awg-*;interface-name:awgq-*');
    expect(keyfileUnmanaged('[main]\nplugins=keyfile\n')).toBeUndefined();
  });
});
