/**
 * net.netfilter.nf_conntrack_acct (the monitor's UDP byte counts): desired whenever awg routes
 * per app or runs tunnels, applied on Linux after our nft table (whose `ct` rules load
 * conntrack, which makes the key exist), dropped on macOS.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { buildDesired, CONNTRACK_ACCT, DEFAULT_FACTS } from '../../../src/model/desired.js';
import { ids } from '../../../src/model/identity.js';
import { realiseDarwin } from '../../../src/resources/platform/darwin.js';
import { NFT_TABLE } from '../../../src/resources/firewall/policy.js';
import { linuxDesired } from '../../helpers/desired.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const withTunnel = Config.parse({
  version: 1,
  tunnels: {
    a: {
      type: 'wireguard',
      privateKey: KEY,
      addresses: ['10.9.0.2/32'],
      peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
    },
  },
  rules: [{ name: 'web', match: { name: 'curl' }, target: 'a' }],
});

describe('conntrack accounting sysctl', () => {
  it('is desired with tunnels, set to 1, after the nft table on Linux', () => {
    const d = linuxDesired(withTunnel);
    const s = d.resources.find((r) => r.id === ids.sysctl(CONNTRACK_ACCT));
    expect(s).toMatchObject({ kind: 'sysctl', spec: { key: CONNTRACK_ACCT, value: '1' } });
    expect(s?.deps).toEqual([ids.firewall(NFT_TABLE)]);
    expect(d.resources.some((r) => r.id === ids.firewall(NFT_TABLE))).toBe(true);
  });

  it('is not desired when awg neither routes apps nor runs tunnels', () => {
    const d = linuxDesired(Config.parse({ version: 1, tunnels: {} }));
    expect(d.resources.some((r) => r.id === ids.sysctl(CONNTRACK_ACCT))).toBe(false);
  });

  it('is dropped on macOS with the other sysctls', () => {
    const d = realiseDarwin(buildDesired(withTunnel), DEFAULT_FACTS);
    expect(d.resources.some((r) => r.kind === 'sysctl')).toBe(false);
  });
});
