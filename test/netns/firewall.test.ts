import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import type { FirewallSpec } from '../../src/model/resources.js';
import { nftCgroupRef, parseCgroup2Mount } from '../../src/resources/cgroup/parse.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { createLinuxFirewallDriver } from '../../src/resources/firewall/linux.js';
import type { NftPolicy } from '../../src/resources/firewall/policy.js';
import { firewallSpec } from '../../src/resources/firewall/render.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { MemoryStateStore } from '../../src/util/state.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  snapshotNetns,
  useNetns,
  vethPair,
  type NetnsSnapshot,
} from '../helpers/netns.js';
import { NsExec } from '../helpers/exec.js';

const skip = requireNetnsPrereqs(['nft', 'ping', 'python3', 'ss']);

async function waitFor(ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20)))
    if (await ok()) return;
  throw new Error('timed out waiting');
}
const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awgt',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};
const mk = (action: 'create' | 'update' | 'delete', spec: FirewallSpec): Change<'firewall'> => ({
  kind: 'firewall',
  id: `firewall/inet/${spec.table}`,
  action,
  ...(action === 'delete' ? { before: spec } : { after: spec }),
  reason: '',
  cause: 'initial',
});

interface NftRule {
  rule?: { comment?: string; expr?: Record<string, unknown>[] };
}
async function counter(ns: string, table: string, comment: string): Promise<number> {
  const j = JSON.parse(
    (await nsExec(ns, 'nft', ['-j', 'list', 'table', 'inet', table])).stdout,
  ) as { nftables: NftRule[] };
  let n = 0;
  for (const r of j.nftables) {
    if (r.rule?.comment !== comment) continue;
    for (const e of r.rule.expr ?? [])
      if (e.counter) n += (e.counter as { packets: number }).packets;
  }
  return n;
}
const ping = async (ns: string, dst: string, cgroupDir?: string) => {
  const cmd = cgroupDir
    ? `echo $$ > ${cgroupDir}/cgroup.procs && exec ping -c1 -W1 ${dst}`
    : `exec ping -c1 -W1 ${dst}`;
  return (await nsExec(ns, 'sh', ['-c', cmd], { allowFail: true })).code === 0;
};

describe.skipIf(skip)('firewall driver in a network namespace', () => {
  const ns = useNetns('fw');
  let peer: string;
  let exec: NsExec;
  let before: NetnsSnapshot;
  const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'))!;
  const cgName = `awgt-fw-${process.pid}`;
  const cgDir = join(mount.mountPoint, cgName, 'app');
  /** one state directory for applies and observations: the boot copy of the kill switch lives there */
  const state = new MemoryStateStore();
  const ctx = (): ApplyContext => {
    const reporter = new MemoryReporter();
    return {
      exec: new NsExec(ns.name, false, reporter),
      reporter,
      state,
      dryRun: false,
      claims,
    };
  };
  const scope = { desired: { resources: [], warnings: [] }, claims, state };
  const policy = (p: Partial<NftPolicy> = {}): NftPolicy => ({
    table: 'awgt',
    linkPrefix: 'awg-',
    fwmarkMask: 0x0f000000,
    bypassMark: 0x0f000000,
    killSwitch: 'on',
    dnsLeakProtection: true,
    tunnels: [
      {
        name: 't',
        link: 'awg-t',
        mark: 0x01000000,
        endpoints: [{ address: '10.200.3.9', port: 51820, protocol: 'udp' }],
        resolvers: ['10.200.4.1'],
      },
    ],
    apps: [
      {
        name: 'app',
        cgroup: nftCgroupRef(mount, `${cgName}/app`),
        action: { type: 'mark', mark: 0x01000000, ipv6: 'block' },
        dns: { v4: '10.200.4.1' },
      },
    ],
    blockMarks: [0x02000000],
    ...p,
  });

  beforeAll(async () => {
    mkdirSync(cgDir, { recursive: true });
    peer = await createNetns('fwpeer');
    await vethPair(ns.name, peer, { addrA: '10.200.2.1/24', addrB: '10.200.2.2/24' });
    exec = new NsExec(ns.name);
    // foreign tables that must stay byte-identical
    await nsExec(ns.name, 'nft', ['-f', '-'], {
      input:
        'table inet filter {\n  chain output {\n    type filter hook output priority 10; policy accept;\n    ip daddr 10.200.2.77 counter drop\n  }\n}\ntable ip other {\n  chain c {\n  }\n}\n',
    });
    before = await snapshotNetns(ns.name);
  });
  afterAll(async () => {
    if (peer) await destroyNetns(peer);
    for (const d of [cgDir, join(mount.mountPoint, cgName)]) {
      try {
        rmdirSync(d);
      } catch {
        /* already gone */
      }
    }
  });

  it('loads atomically once; a second apply is a no-op; read-back equals the rendered spec', async () => {
    const d = createLinuxFirewallDriver({ exec });
    expect((await d.observe(scope)).resources).toEqual([]);
    const spec = firewallSpec(policy());
    const c1 = ctx();
    expect(await d.apply(mk('create', spec), c1)).toBe('changed');
    // the nft transaction, then the boot copy of the kill switch (written after the table)
    expect(c1.exec.mutations).toBe(2);
    expect(spec.boot).toBeDefined();
    expect(state.get('killswitch-boot.nft')).toBe(spec.boot);
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.spec)).toEqual([spec]);
    const c2 = ctx();
    expect(await d.apply(mk('create', spec), c2)).toBe('unchanged');
    expect(c2.exec.mutations).toBe(0);
  });

  it('kill switch drops egress outside the tunnels; allowLan lets the LAN through', async () => {
    const d = createLinuxFirewallDriver({ exec });
    const ks = await counter(ns.name, 'awgt', 'kill-switch');
    expect(await ping(ns.name, '10.200.2.2')).toBe(false);
    expect(await counter(ns.name, 'awgt', 'kill-switch')).toBeGreaterThan(ks);
    expect(
      await d.apply(mk('update', firewallSpec(policy({ killSwitch: 'allowLan' }))), ctx()),
    ).toBe('changed');
    expect(await ping(ns.name, '10.200.2.2')).toBe(true);
  });

  it('marks traffic of a process in the app cgroup (socket cgroupv2 level/path)', async () => {
    const before = await counter(ns.name, 'awgt', 'app/app');
    expect(await ping(ns.name, '10.200.2.2', cgDir)).toBe(true);
    expect(await counter(ns.name, 'awgt', 'app/app')).toBeGreaterThan(before);
    const other = await counter(ns.name, 'awgt', 'app/app');
    expect(await ping(ns.name, '10.200.2.2')).toBe(true);
    expect(await counter(ns.name, 'awgt', 'app/app')).toBe(other);
  });

  it('a recreated cgroup reads back as drift and is repaired by a reload', async () => {
    const d = createLinuxFirewallDriver({ exec });
    const spec = firewallSpec(policy({ killSwitch: 'allowLan' }));
    rmdirSync(cgDir);
    mkdirSync(cgDir);
    const o = await d.observe(scope);
    expect(o.resources[0]!.spec.ruleset).not.toBe(spec.ruleset);
    expect(o.resources[0]!.spec.ruleset).toMatch(/socket cgroupv2 level 2 \d+ /);
    expect(await d.apply(mk('update', spec), ctx())).toBe('changed');
    expect((await d.observe(scope)).resources[0]!.spec).toEqual(spec);
  });

  it('a hand-added rule in our table is drift', async () => {
    await nsExec(ns.name, 'nft', [
      'add',
      'rule',
      'inet',
      'awgt',
      'filter_out',
      'ip',
      'daddr',
      '10.200.2.99',
      'accept',
    ]);
    const spec = firewallSpec(policy({ killSwitch: 'allowLan' }));
    const d = createLinuxFirewallDriver({ exec });
    expect((await d.observe(scope)).resources[0]!.spec).not.toEqual(spec);
    expect(await d.apply(mk('update', spec), ctx())).toBe('changed');
    expect((await d.observe(scope)).resources[0]!.spec).toEqual(spec);
  });

  it('limits: route_out sets the class priority, shape_out the runtime one, nat_post NATs into the class ports; read-back equals the spec', async () => {
    const d = createLinuxFirewallDriver({ exec });
    const app = nftCgroupRef(mount, `${cgName}/app`);
    const spec = firewallSpec(
      policy({
        killSwitch: 'allowLan',
        apps: [{ name: 'app', cgroup: app, action: { type: 'direct' }, shapeClass: 1 }],
        shaping: {
          classes: [
            { n: 1, name: 'rule/app', cgroup: app, ports: [61440, 61567] },
            { n: 2, name: 'pid/1', cgroup: app, ports: [61568, 61695], runtime: true },
          ],
        },
      }),
    );
    expect(spec.ruleset).toContain('meta priority set 1:11');
    expect(spec.ruleset).toContain('chain shape_out');
    expect(await d.apply(mk('update', spec), ctx())).toBe('changed');
    expect((await d.observe(scope)).resources[0]!.spec).toEqual(spec);
    expect(await d.apply(mk('update', spec), ctx())).toBe('unchanged');
    // a connection from the limited group leaves with a source port of its class's range
    // (shape_out's runtime class 2 overrides the rule's 1); one from elsewhere keeps its own
    const server = nsSpawn(peer, 'python3', [
      '-c',
      'import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("10.200.2.2",5601));s.listen()\nfor _ in range(2):\n c,a=s.accept();print(a[1],flush=True);c.close()',
    ]);
    try {
      await waitFor(() =>
        nsExec(peer, 'ss', ['-Hltn', 'sport = :5601']).then((r) => r.stdout.includes('5601')),
      );
      const connect = 'import socket;socket.create_connection(("10.200.2.2",5601)).close()';
      await nsExec(ns.name, 'sh', [
        '-c',
        `echo $$ > ${cgDir}/cgroup.procs && exec python3 -c '${connect}'`,
      ]);
      await nsExec(ns.name, 'python3', ['-c', connect]);
      await server.exited;
      const [limited, other] = server.output().trim().split('\n').map(Number);
      expect(limited).toBeGreaterThanOrEqual(61568);
      expect(limited).toBeLessThanOrEqual(61695);
      expect(other).toBeLessThan(61440);
    } finally {
      await server.kill();
    }
  });

  it('delete removes only our table; the namespace is as before', async () => {
    const d = createLinuxFirewallDriver({ exec });
    const spec = firewallSpec(policy());
    expect(await d.apply(mk('delete', spec), ctx())).toBe('changed');
    expect(await d.apply(mk('delete', spec), ctx())).toBe('unchanged');
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });

  it('a table with our name but no marker is a conflict and is left alone', async () => {
    await nsExec(ns.name, 'nft', ['add', 'table', 'inet', 'awgt']);
    await nsExec(ns.name, 'nft', ['add', 'chain', 'inet', 'awgt', 'mine']);
    const listing = (await nsExec(ns.name, 'nft', ['list', 'table', 'inet', 'awgt'])).stdout;
    const d = createLinuxFirewallDriver({ exec });
    const o = await d.observe(scope);
    expect(o.resources).toEqual([]);
    expect(o.foreign).toEqual([
      expect.objectContaining({ relation: 'conflict', id: 'firewall/inet/awgt' }),
    ]);
    await expect(d.apply(mk('create', firewallSpec(policy())), ctx())).rejects.toMatchObject({
      kind: 'conflict',
    });
    await expect(d.apply(mk('delete', firewallSpec(policy())), ctx())).rejects.toMatchObject({
      kind: 'conflict',
    });
    expect((await nsExec(ns.name, 'nft', ['list', 'table', 'inet', 'awgt'])).stdout).toBe(listing);
    await nsExec(ns.name, 'nft', ['delete', 'table', 'inet', 'awgt']);
  });
});
