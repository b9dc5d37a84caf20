/**
 * Limits on macOS against the host model (test/helpers/macos-host/): the real pipeline, the
 * darwin realisation (resources/platform/darwin-shaping.ts), the dummynet driver
 * (resources/shaper/darwin.ts) and the PF anchor's dummynet rules, on a model that keeps
 * dummynet pipes as xnu does and prints `dnctl list` as dnctl.c does. Verified on the model
 * only: no packet is shaped here, and nothing has run on a Mac.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOT_ANCHOR_FILE } from '../../../src/platform/darwin/pf-boot.js';
import { macConfig, rigsCleanedAfterEach } from '../../helpers/macos-host/scenario.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfDummynetPath } from '../../helpers/macos-host/pf-eval.js';
import { parseDnctlList } from '../../../src/platform/darwin/dnctl.js';
import { DARWIN_LIMITS_WARNING } from '../../../src/resources/platform/darwin-shaping.js';

/** the scenario (a WireGuard default tunnel `home`) with two limited rules and a limit on the tunnel */
function limitsConfig(o: { killSwitch?: boolean; tunnelLimit?: boolean; rules?: boolean } = {}) {
  let y = macConfig({ killSwitch: o.killSwitch ?? false });
  if (o.tunnelLimit !== false)
    y = y.replace('    mtu: 1420\n', '    mtu: 1420\n    limit: { upload: 50Mbit }\n');
  if (o.rules !== false)
    y += `rules:
  - name: backup
    match: { name: restic }
    target: direct
    limit: { upload: 20Mbit, download: 100Mbit }
  - name: browser
    match: { name: firefox }
    target: home
    limit: { download: 5Mbit }
  - name: tools
    match: { dir: /usr/bin }
    target: direct
`;
  return y;
}

const pipesOf = (h: MacHost) =>
  Object.fromEntries(
    [...h.pipes].map(([n, p]) => [n, [p.bandwidth, 'bytes' in p.queue ? p.queue.bytes : p.queue]]),
  );

const OUR_DUMMYNET = [
  'no dummynet quick on lo0 all',
  'dummynet out quick proto tcp from any port 45056:45183 to any pipe 45056',
  'dummynet in quick proto tcp from any to any port 45056:45183 pipe 45057',
  'dummynet in quick proto tcp from any to any port 45184:45311 pipe 45059',
];

describe('macOS host model: limits (dummynet pipes, PF dummynet rules)', () => {
  const rig = rigsCleanedAfterEach();

  it('apply converges in one pass: a pipe per limited class and direction, the tunnel’s own pipe, the anchor’s dummynet rules and the main ruleset’s hook; a second apply changes nothing', async () => {
    const r = rig(limitsConfig());
    const { ctx } = await r.apply();
    expect(ctx.outcome).toBe('converged');
    expect(pipesOf(r.host)).toEqual({
      45056: [20_000_000, 25 * 1024], // backup upload: 10 ms = 25000 bytes → 25 KB
      45057: [100_000_000, 123 * 1024], // backup download: 125000 bytes → 123 KB (rounded up)
      45059: [5_000_000, 7 * 1024], // browser download
      45120: [50_000_000, 62 * 1024], // tunnel home's upload (slot 33)
    });
    const utun = r.host.pf.anchors
      .get('com.awg/awg')!
      .join('\n')
      .match(/utun\d+/)![0];
    expect(r.host.pf.anchorDummynet.get('com.awg/awg')).toEqual([
      ...OUR_DUMMYNET,
      `dummynet out quick on ${utun} all pipe 45120`,
    ]);
    expect(r.host.pf.dummynet).toEqual([
      'dummynet-anchor "com.apple/*" all',
      'dummynet-anchor "com.awg/*" all',
    ]);
    // `dnctl list` as the driver reads it: our pipes print what it configured
    expect(
      parseDnctlList((await r.host.read('dnctl', ['list'])).stdout).map((p) => p.bandwidthText),
    ).toEqual(['20.000 Mbit/s', '100.000 Mbit/s', '5.000 Mbit/s', '50.000 Mbit/s']);
    expect(await r.diff()).toEqual([]);
    const again = await r.apply();
    expect(again.ctx.outcome).toBe('unchanged');
    expect(again.mutations).toBe(0);
    // the limits' honest note travels with the plan (awg diff and apply print it)
    expect((await r.prep()).desired.warnings).toContain(DARWIN_LIMITS_WARNING);
  });

  it('PF sends each packet to its pipes: a limited rule’s ports both ways, on the physical interface and in the tunnel (then the tunnel’s pipe too); the rest only through the tunnel’s; loopback never', async () => {
    const r = rig(limitsConfig());
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const utun = [...r.host.interfaces.keys()].find((i) => i.startsWith('utun'))!;
    const tcp = { family: 4 as const, proto: 'tcp' as const, dst: '93.184.216.34' };
    // backup (class 1: 45056-45183, up 45056, down 45057) dialled direct, on en0
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: 'en0', sport: 45060, dport: 443 }),
    ).toEqual([45056]);
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'in', iface: 'en0', sport: 443, dport: 45060 }),
    ).toEqual([45057]);
    // browser (class 2, download only: 45059) through the tunnel: its pipe, then the tunnel's upload pipe
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: utun, sport: 45190, dport: 443 }),
    ).toEqual([45120]);
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'in', iface: utun, sport: 443, dport: 45190 }),
    ).toEqual([45059]);
    // a limited rule's flow sent into the tunnel passes both its pipe and the tunnel's
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: utun, sport: 45060, dport: 443 }),
    ).toEqual([45056, 45120]);
    // anything else: through the tunnel's upload pipe only; on en0 nothing; loopback never
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: utun, sport: 51000, dport: 443 }),
    ).toEqual([45120]);
    expect(
      pfDummynetPath(r.host, {
        dir: 'out',
        iface: utun,
        family: 4,
        proto: 'udp',
        dst: '1.1.1.1',
        sport: 5353,
        dport: 53,
      }),
    ).toEqual([45120]);
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: 'en0', sport: 51000, dport: 443 }),
    ).toEqual([]);
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: 'lo0', sport: 45060, dport: 15200 }),
    ).toEqual([]);
    // the main ruleset reloaded without our hook: nothing is shaped until the next run repairs it
    r.host.pfctlReload();
    expect(
      pfDummynetPath(r.host, { ...tcp, dir: 'out', iface: 'en0', sport: 45060, dport: 443 }),
    ).toEqual([]);
  });

  it('drift is found and repaired: a pipe deleted, a pipe reconfigured, the anchor’s dummynet rules flushed, the main ruleset reloaded without the hook', async () => {
    const r = rig(limitsConfig());
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const converged = JSON.stringify(r.host.snapshot());
    const drifts: [string, () => Promise<unknown> | void][] = [
      ['pipe deleted', () => r.host.mutate('dnctl', ['pipe', 'delete', '45056'])],
      [
        'pipe reconfigured',
        () => r.host.mutate('dnctl', ['pipe', '45057', 'config', 'bw', '1Mbit/s']),
      ],
      [
        'anchor dummynet flushed',
        () => r.host.mutate('pfctl', ['-a', 'com.awg/awg', '-F', 'dummynet']),
      ],
      ['pf.conf reloaded', () => r.host.pfctlReload()],
    ];
    for (const [what, drift] of drifts) {
      await drift();
      const d = await r.diff();
      expect(d.length, what).toBeGreaterThan(0);
      expect((await r.apply()).ctx.outcome, what).toBe('converged');
      expect(await r.diff(), what).toEqual([]);
      // repaired to the same host (the state flushes PF counts aside)
      const now = r.host.snapshot() as { pf: object };
      expect(JSON.stringify(now), what).toBe(converged);
    }
  });

  it('awg down leaves no pipe of ours and restores the host exactly; another program’s pipes are never touched', async () => {
    const host = MacHost.laptop();
    // Network Link Conditioner's pipes (test/fixtures/macos/dummynet/…superuser.txt)
    await host.mutate('dnctl', ['pipe', '40269', 'config', 'bw', '1Mbit/s', 'delay', '500']);
    await host.mutate('dnctl', ['pipe', '40270', 'config', 'bw', '1Mbit/s', 'delay', '500']);
    const prior = JSON.stringify(host.snapshot());
    const ours = host.mutations;
    const r = rig(limitsConfig(), host);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect([...host.pipes.keys()].sort()).toEqual([40269, 40270, 45056, 45057, 45059, 45120]);
    await r.down();
    expect([...host.pipes.keys()].sort()).toEqual([40269, 40270]);
    expect(JSON.stringify(host.snapshot())).toBe(prior);
    expect(
      r
        .mutationLines()
        .slice(ours)
        .filter((l) => /40269|40270/.test(l)),
    ).toEqual([]);
  });

  it('the pipes’ record torn after apply: `down` still deletes exactly our pipes (from the applied record’s copy) and says it recovered them', async () => {
    const host = MacHost.laptop();
    await host.mutate('dnctl', ['pipe', '40269', 'config', 'bw', '1Mbit/s']);
    const r = rig(limitsConfig(), host);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const file = join(r.state.dir, 'darwin-pipes.json');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, text.length >> 1));
    await r.down();
    expect([...host.pipes.keys()]).toEqual([40269]);
  });

  it('a limit edited, then removed: the pipe follows in place, then goes with its dummynet rule', async () => {
    const r = rig(limitsConfig());
    expect((await r.apply()).ctx.outcome).toBe('converged');
    r.write(limitsConfig().replace('download: 5Mbit', 'download: 8Mbit'));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(r.host.pipes.get(45059)?.bandwidth).toBe(8_000_000);
    expect(r.mutationLines().filter((l) => l.startsWith('dnctl pipe delete'))).toEqual([]);
    r.write(limitsConfig({ tunnelLimit: false }).replace(/ {4}limit: \{ download: 5Mbit \}\n/, ''));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect([...r.host.pipes.keys()].sort()).toEqual([45056, 45057]);
    expect(r.host.pf.anchorDummynet.get('com.awg/awg')).toEqual(OUR_DUMMYNET.slice(0, 3));
    r.write(limitsConfig({ tunnelLimit: false }).replace(/ {4}limit: .*\n/g, ''));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(r.host.pipes.size).toBe(0);
    expect(r.host.pf.anchorDummynet.get('com.awg/awg') ?? []).toEqual([]);
    expect(await r.diff()).toEqual([]);
  });

  it('with the kill switch, the boot copy of the anchor carries no dummynet rule (no pipe exists at boot)', async () => {
    const r = rig(limitsConfig({ killSwitch: true }));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const boot = readFileSync(join(r.state.dir, BOOT_ANCHOR_FILE), 'utf8');
    expect(boot).toContain('block drop out quick all');
    expect(boot).not.toMatch(/dummynet/);
    expect(r.host.pf.anchorDummynet.get('com.awg/awg')).toHaveLength(5);
  });

  it('a pipe of another program in awg’s range is a conflict: nothing of it is touched', async () => {
    const host = MacHost.laptop();
    await host.mutate('dnctl', ['pipe', '45057', 'config', 'bw', '3Mbit/s']);
    const ours = host.mutations;
    const r = rig(limitsConfig(), host);
    const { ctx } = await r.apply();
    expect(ctx.outcome).not.toBe('converged');
    expect(host.pipes.get(45057)?.bandwidth).toBe(3_000_000);
    expect(
      r
        .mutationLines()
        .slice(ours)
        .filter((l) => /45057/.test(l)),
    ).toEqual([]);
  });

  it('a failure at any mutation of the first apply (kill switch off) rolls the host back exactly; then down leaves no pipe', async () => {
    const clean = rig(limitsConfig());
    expect((await clean.apply()).ctx.outcome).toBe('converged');
    const total = clean.mutationLines().length;
    expect(clean.mutationLines().filter((l) => l.startsWith('dnctl'))).toHaveLength(4);
    for (let k = 1; k <= total; k++) {
      const h = MacHost.laptop();
      const prior = JSON.stringify(h.snapshot());
      h.faults = [{ match: /./, nth: k }];
      const r = rig(limitsConfig(), h);
      const { ctx } = await r.apply();
      const failed = r.mutationLines()[k - 1];
      if (ctx.outcome === 'converged') {
        expect(failed).toMatch(/^(dscacheutil -flushcache|killall -HUP mDNSResponder)$/);
        continue;
      }
      expect(JSON.stringify(h.snapshot()), `mutation ${k} (${failed})`).toBe(prior);
      h.faults = [];
      await r.down();
      expect(h.pipes.size, `mutation ${k} (${failed}): down`).toBe(0);
    }
  });
});
