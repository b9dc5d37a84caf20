/**
 * What the model makes of processes limited at run time (`awg limit`, BuildOptions.runtimeLimits):
 * their cgroups (below a rule's or the root, so the cgroup driver neither misses nor removes
 * them), a class each after the config's, and a firewall even for a config that needs none
 * otherwise.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { buildDesired } from '../../../src/model/desired.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const FACTS = { cgroupNftPrefix: '', defaultRouteV4: { gateway: '192.0.2.1', interface: 'eth0' } };

const withTunnel = Config.parse({
  version: 1,
  tunnels: {
    vpn: {
      type: 'wireguard',
      privateKey: KEY,
      addresses: ['10.9.0.2/32'],
      peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['10.9.0.0/24'] }],
    },
  },
  rules: [
    { name: 'backup', match: { name: 'restic' }, target: 'vpn', limit: { upload: '20Mbit' } },
    { name: 'web', match: { name: 'firefox' }, target: 'vpn' },
  ],
});

const cgroups = (m: ReturnType<typeof buildDesired>) =>
  m.resources.filter((r) => r.kind === 'cgroup').map((r) => ({ id: r.id, deps: r.deps }));

describe('runtime limits in the model', () => {
  it('each gets its cgroup below the one it sits in, and a class after the config’s', () => {
    const m = buildDesired(withTunnel, {
      facts: FACTS,
      runtimeLimits: [
        { pid: 4242, group: 'awg/web/_limit-4242', download: 1_000_000 },
        { pid: 77, group: 'awg/_limit-77', upload: 2_000_000 },
      ],
    });
    expect(cgroups(m)).toEqual(
      expect.arrayContaining([
        { id: 'cgroup/awg/web/_limit-4242', deps: ['cgroup/awg/web'] },
        { id: 'cgroup/awg/_limit-77', deps: ['cgroup/awg'] },
      ]),
    );
    expect(m.policy?.shaping?.classes.map((k) => [k.n, k.name, k.group])).toEqual([
      [1, 'rule/backup', 'awg/backup'],
      [2, 'pid/77', 'awg/_limit-77'],
      [3, 'pid/4242', 'awg/web/_limit-4242'],
    ]);
  });

  it('a config with no tunnel and no rule: the root cgroup, the limit’s, and the firewall that classifies it', () => {
    const bare = Config.parse({ version: 1 });
    expect(buildDesired(bare, { facts: FACTS }).policy).toBeUndefined();
    const m = buildDesired(bare, {
      facts: FACTS,
      runtimeLimits: [{ pid: 77, group: 'awg/_limit-77', download: 1_000_000 }],
    });
    expect(cgroups(m)).toEqual([
      { id: 'cgroup/awg', deps: [] },
      { id: 'cgroup/awg/_limit-77', deps: ['cgroup/awg'] },
    ]);
    expect(m.policy?.shaping?.classes).toHaveLength(1);
    expect(m.resources.some((r) => r.kind === 'shaper')).toBe(true);
  });
});
