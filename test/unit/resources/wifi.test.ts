/**
 * The Wi-Fi SSID in a network's identity (resources/wifi.ts, daemon/profile-switch.ts):
 * `iw dev <iface> link` parsed from captured text, hostile SSIDs refused, asked only of a
 * wireless interface, and the SSID telling two networks behind the same gateway apart (the
 * working profile remembered per SSID).
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { ProfileSwitcher, sameNetwork } from '../../../src/daemon/profile-switch.js';
import { networkOf } from '../../../src/daemon/tunnels.js';
import { linuxWifiSsid, ssidOfIwLink } from '../../../src/resources/wifi.js';
import { MemoryStateStore } from '../../../src/util/state.js';

// iw 5.19, an Intel AX200 (the BSSID altered)
const CONNECTED = `Connected to 02:1a:2b:3c:4d:5e (on wlp2s0)
\tSSID: Cafe Guest
\tfreq: 5180
\tRX: 84213 bytes (412 packets)
\tTX: 15870 bytes (131 packets)
\tsignal: -58 dBm
\trx bitrate: 866.7 MBit/s VHT-MCS 9 80MHz short GI VHT-NSS 2
\ttx bitrate: 650.0 MBit/s VHT-MCS 7 80MHz short GI VHT-NSS 2

\tbss flags:\tshort-slot-time
\tdtim period:\t1
\tbeacon int:\t100
`;

describe('ssidOfIwLink', () => {
  it('the SSID line of a connected link; nothing when not connected', () => {
    expect(ssidOfIwLink(CONNECTED)).toBe('Cafe Guest');
    expect(ssidOfIwLink('Not connected.\n')).toBeUndefined();
    expect(ssidOfIwLink('')).toBeUndefined();
    // an SSID line without the connection line (some other output) is not taken
    expect(ssidOfIwLink('\tSSID: x\n')).toBeUndefined();
  });

  it("iw's escapes are kept as printed (a stable identity); hostile bytes give nothing", () => {
    // iw prints non-printable bytes (and edge spaces) as \\xNN
    expect(ssidOfIwLink(CONNECTED.replace('Cafe Guest', '\\xe2\\x98\\x95 caf\\xc3\\xa9'))).toBe(
      '\\xe2\\x98\\x95 caf\\xc3\\xa9',
    );
    // raw control or non-ASCII bytes (an iw that does not escape): refused
    for (const bad of ['a\x1b[2Jb', 'caf\u00e9', 'a\rb', '', 'x'.repeat(129)])
      expect(ssidOfIwLink(CONNECTED.replace('Cafe Guest', bad))).toBeUndefined();
    expect(ssidOfIwLink(CONNECTED.replace('Cafe Guest', 'x'.repeat(128)))).toBe('x'.repeat(128));
  });

  it('asks iw only of a wireless interface with a sane name; a missing iw is nothing', async () => {
    const asked: string[][] = [];
    const exec = {
      read: async (cmd: string, args: string[]) => {
        asked.push([cmd, ...args]);
        return { code: 0, stdout: CONNECTED, stderr: '' };
      },
    };
    expect(await linuxWifiSsid(exec, 'wlp2s0', () => true)).toBe('Cafe Guest');
    expect(await linuxWifiSsid(exec, 'eth0', () => false)).toBeUndefined();
    expect(await linuxWifiSsid(exec, '../x', () => true)).toBeUndefined();
    expect(asked).toEqual([['iw', 'dev', 'wlp2s0', 'link']]);
    const missing = {
      read: async () => {
        throw Object.assign(new Error('spawn iw ENOENT'), { code: 'ENOENT' });
      },
    };
    expect(await linuxWifiSsid(missing, 'wlp2s0', () => true)).toBeUndefined();
    const failing = { read: async () => ({ code: 237, stdout: '', stderr: 'nl80211 not found' }) };
    expect(await linuxWifiSsid(failing, 'wlp2s0', () => true)).toBeUndefined();
  });
});

describe('the SSID in the network identity', () => {
  const route = { gateway: '192.168.1.1', interface: 'wlp2s0' };
  const home = { defaultRouteV4: route, wifi: { interface: 'wlp2s0', ssid: 'home' } };
  const cafe = { defaultRouteV4: route, wifi: { interface: 'wlp2s0', ssid: 'Cafe Guest' } };

  it('networkOf takes the SSID of the default route interface only', () => {
    expect(networkOf(home, () => undefined)).toEqual({ ...route, ssid: 'home' });
    expect(
      networkOf({ ...home, wifi: { interface: 'wlan9', ssid: 'other' } }, () => undefined),
    ).toEqual(route);
  });

  it('two SSIDs behind the same gateway address are two networks; an SSID on one side only is not', () => {
    const a = networkOf(home, () => undefined)!;
    const b = networkOf(cafe, () => undefined)!;
    expect(sameNetwork(a, b)).toBe(false);
    expect(sameNetwork(a, route)).toBe(true);
  });

  it('the working profile is remembered per SSID', () => {
    const cfg = Config.parse({
      version: 1,
      tunnels: {
        t: {
          type: 'amneziawg',
          privateKey: { file: 't.key' },
          addresses: ['10.0.0.2/32'],
          peers: [
            {
              publicKey: 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=',
              allowedIPs: ['10.0.0.0/24'],
            },
          ],
          obfuscation: { jc: 3, jmin: 40, jmax: 40 },
          profiles: [{ name: 'a' }, { name: 'b', jmin: 60, jmax: 60 }],
        },
      },
    });
    const state = new MemoryStateStore();
    const up = { state: 'up', lastUpMs: 1 } as never;
    const down = { state: 'down', reason: 'handshake', lastUpMs: 1 } as never;
    const s = new ProfileSwitcher(state);
    s.setNetwork(
      networkOf(cafe, () => undefined),
      cfg,
    );
    expect(s.rate(cfg, 't', down)).toMatchObject({ from: 'a', to: 'b' });
    s.rate(cfg, 't', up);
    expect(state.get('profiles')).toMatchObject({
      networks: [{ ...route, ssid: 'Cafe Guest', tunnels: { t: 'b' } }],
    });
    // a restart at home (same gateway address, another SSID): nothing remembered there
    const r = new ProfileSwitcher(state);
    expect(
      r.setNetwork(
        networkOf(home, () => undefined),
        cfg,
      ),
    ).toEqual([]);
    // back at the cafe: b
    expect(
      r.setNetwork(
        networkOf(cafe, () => undefined),
        cfg,
      ),
    ).toMatchObject([{ from: 'a', to: 'b', reason: 'network' }]);
  });
});
