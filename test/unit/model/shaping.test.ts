/** Limits in the model (model/shaping.ts): classes, their ports and handles, the shapers and the policy. */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { buildDesired, type HostFacts } from '../../../src/model/desired.js';
import type { ShaperSpec } from '../../../src/model/resources.js';
import {
  classHandle,
  classPorts,
  ifbName,
  shapeClasses,
  SHAPE_PORT_MASK,
} from '../../../src/model/shaping.js';
import { AwgError } from '../../../src/errors.js';

const KEY = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';
const wg = (extra: Record<string, unknown> = {}) => ({
  type: 'wireguard',
  privateKey: 'cHJpdmF0ZWtleXByaXZhdGVrZXlwcml2YXRla2V5cHI=',
  addresses: ['10.0.0.2/32'],
  peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
  ...extra,
});
const facts: HostFacts = {
  cgroupNftPrefix: '',
  defaultRouteV4: { gateway: '192.0.2.254', interface: 'eth0' },
  defaultRouteV6: { gateway: 'fe80::1', interface: 'eth0' },
};
const config = (raw: Record<string, unknown>) => Config.parse({ version: 1, ...raw });

describe('classes', () => {
  it('128 ports each from 61440, aligned to their u32 mask; HTB minor n + 0x10', () => {
    expect(classPorts(1)).toEqual([61440, 61567]);
    expect(classPorts(32)).toEqual([65408, 65535]);
    for (let n = 1; n <= 32; n++) {
      const [lo, hi] = classPorts(n);
      expect(lo & SHAPE_PORT_MASK).toBe(lo);
      expect(hi & SHAPE_PORT_MASK).toBe(lo);
    }
    expect(classHandle(1)).toBe('1:11');
    expect(classHandle(32)).toBe('1:30');
  });

  it('ifb names fit IFNAMSIZ and differ per device and direction', () => {
    expect(ifbName('eth0', 'egress')).toMatch(/^awgq-[0-9a-f]{7}$/);
    expect(ifbName('eth0', 'egress')).not.toBe(ifbName('eth0', 'ingress'));
    expect(ifbName('eth0', 'egress')).not.toBe(ifbName('eth1', 'egress'));
  });

  it("the config's limits in rule order (enabled ones), then runtime limits in pid order", () => {
    const c = config({
      tunnels: { t: wg() },
      rules: [
        { name: 'a', match: { name: 'a' }, target: 't', limit: { upload: '20Mbit' } },
        { name: 'b', match: { name: 'b' }, target: 't' },
        { name: 'c', match: { name: 'c' }, target: 'direct', limit: { download: '2MB/s' } },
        {
          name: 'd',
          match: { name: 'd' },
          target: 't',
          enabled: false,
          limit: { upload: '1Mbit' },
        },
      ],
    });
    expect(
      shapeClasses(c, 'awg', [
        { pid: 90, group: 'awg/b/_limit-90', download: 1_234_567 },
        { pid: 7, group: 'awg/_limit-7', upload: 500_000 },
      ]),
    ).toEqual([
      { n: 1, name: 'rule/a', group: 'awg/a', upload: 20_000_000 },
      { n: 2, name: 'rule/c', group: 'awg/c', download: 16_000_000 },
      { n: 3, name: 'pid/7', group: 'awg/_limit-7', upload: 500_000, runtime: true },
      // six significant digits, what tc prints back exactly
      { n: 4, name: 'pid/90', group: 'awg/b/_limit-90', download: 1_235_000, runtime: true },
    ]);
  });

  it('more than 32 limits is an invalid-config error naming those beyond', () => {
    const c = config({
      rules: Array.from({ length: 30 }, (_, i) => ({
        name: `r${i}`,
        match: { name: `r${i}` },
        target: 'direct',
        limit: { upload: '1Mbit' },
      })),
    });
    const runtime = [1, 2, 3].map((pid) => ({ pid, group: `awg/_limit-${pid}`, upload: 8000 }));
    expect(shapeClasses(c, 'awg', runtime.slice(0, 2))).toHaveLength(32);
    try {
      shapeClasses(c, 'awg', runtime);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AwgError);
      expect((e as AwgError).kind).toBe('invalid-config');
      expect((e as Error).message).toContain('beyond the limit: pid/3');
    }
  });
});

describe('buildDesired with limits', () => {
  const c = config({
    tunnels: { t: wg({ limit: { upload: '50Mbit' } }), u: wg({ addresses: ['10.0.1.2/32'] }) },
    rules: [
      {
        name: 'backup',
        match: { name: 'restic' },
        target: 't',
        limit: { upload: '80Mbit', download: '100Mbit' },
      },
      { name: 'web', match: { name: 'firefox' }, target: 'u' },
      { name: 'upd', match: { name: 'apt' }, target: 'direct', limit: { download: '10Mbit' } },
    ],
  });
  const m = buildDesired(c, { facts });
  const shapers = m.resources.filter((r) => r.kind === 'shaper');
  const spec = (id: string) => shapers.find((r) => r.id === id)!.spec as ShaperSpec;

  it('a shaper per TUN and uplink direction with something to shape, and its ifb links', () => {
    expect(shapers.map((r) => r.id)).toEqual([
      'shaper/awg-t/egress',
      'shaper/awg-t/ingress',
      'shaper/awg-u/egress',
      'shaper/awg-u/ingress',
      'shaper/eth0/egress',
      'shaper/eth0/ingress',
    ]);
    const ifbs = m.resources.filter((r) => r.kind === 'link' && r.spec.kind === 'ifb');
    expect(ifbs.map((r) => r.id).sort()).toEqual(
      [
        ifbName('awg-t', 'ingress'),
        ifbName('awg-u', 'ingress'),
        ifbName('eth0', 'egress'),
        ifbName('eth0', 'ingress'),
      ]
        .map((n) => `link/${n}`)
        .sort(),
    );
    expect(shapers.find((r) => r.id === 'shaper/awg-t/ingress')!.deps).toEqual([
      'link/awg-t',
      `link/${ifbName('awg-t', 'ingress')}`,
    ]);
    expect(shapers.find((r) => r.id === 'shaper/eth0/egress')!.deps).toEqual([
      `link/${ifbName('eth0', 'egress')}`,
    ]);
  });

  it("a TUN's egress carries its HTB itself, under the tunnel limit, classes clamped to it", () => {
    expect(spec('shaper/awg-t/egress')).toEqual({
      device: 'awg-t',
      direction: 'egress',
      total: 50_000_000,
      classes: [{ n: 1, name: 'rule/backup', rate: 50_000_000, ports: [61440, 61567] }],
    });
    expect(spec('shaper/awg-u/egress').total).toBeUndefined();
    expect(spec('shaper/eth0/ingress')).toEqual({
      device: 'eth0',
      direction: 'ingress',
      ifb: ifbName('eth0', 'ingress'),
      classes: [
        { n: 1, name: 'rule/backup', rate: 100_000_000, ports: [61440, 61567] },
        { n: 2, name: 'rule/upd', rate: 10_000_000, ports: [61568, 61695] },
      ],
    });
  });

  it('the policy: the limited rules carry their class; every class with its group and ports', () => {
    const apps = m.policy!.apps.filter((a) => !a.name.startsWith('_'));
    expect(apps.map((a) => [a.name, a.shapeClass])).toEqual([
      ['backup', 1],
      ['web', undefined],
      ['upd', 2],
    ]);
    expect(m.policy!.shaping).toEqual({
      classes: [
        { n: 1, name: 'rule/backup', group: 'awg/backup', ports: [61440, 61567] },
        { n: 2, name: 'rule/upd', group: 'awg/upd', ports: [61568, 61695] },
      ],
    });
  });

  it('runtime limits add classes (shape_out) and no uplink leaves direct traffic unshaped, with a warning', () => {
    const r = buildDesired(c, {
      facts: { cgroupNftPrefix: '' },
      runtimeLimits: [{ pid: 42, group: 'awg/web/_limit-42', upload: 1_000_000 }],
    });
    expect(r.policy!.shaping!.classes[2]).toEqual({
      n: 3,
      name: 'pid/42',
      group: 'awg/web/_limit-42',
      ports: [61696, 61823],
      runtime: true,
    });
    expect(r.resources.some((x) => x.id.startsWith('shaper/eth0'))).toBe(false);
    expect(r.warnings).toContain(
      'limits: this host has no default route, so traffic that leaves without a tunnel is not shaped',
    );
  });

  it('no limit: no shaper, no ifb, no shaping in the policy', () => {
    const plain = buildDesired(
      config({ tunnels: { t: wg() }, rules: [{ match: { name: 'x' }, target: 't' }] }),
      { facts },
    );
    expect(
      plain.resources.filter(
        (r) => r.kind === 'shaper' || (r.kind === 'link' && r.spec.kind === 'ifb'),
      ),
    ).toEqual([]);
    expect(plain.policy!.shaping).toBeUndefined();
  });
});
