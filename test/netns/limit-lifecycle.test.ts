/**
 * Limits as resources (Step 16), through the product in the topology of limit-topology.ts:
 * - `awg diff` plans the shapers and their ifbs; `awg apply` builds them, a second apply
 *   changes nothing;
 * - drift: `tc qdisc del` of our qdisc, `tc class del` of our class, `tc filter del` of our
 *   redirect are named by `awg diff` and repaired by the next apply; under the daemon
 *   (`awg up`, drift timer off) a deleted qdisc or class is repaired at once (RTNLGRP_TC);
 * - `awg down` leaves `tc qdisc show` (every device) exactly as before the first apply, with
 *   the user's own qdiscs on the uplink (a root pfifo) and on another device (an HTB and a
 *   clsact with a filter) untouched throughout;
 * - a clsact on the uplink that awg did not create is a conflict: the apply stops before any
 *   change, naming the device, and nothing is touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNetnsPrereqs, nsExec, sweepStaleNetns, vethPair } from '../helpers/netns.js';
import { ifbName } from '../../src/model/shaping.js';
import { showRun } from './perapp-topology.js';
import { createLimitTopology, qdiscs, type LimitTopology } from './limit-topology.js';
import { startUp, converged } from './daemon-support.js';
import { writeConfig } from '../helpers/awg.js';

const skip = requireNetnsPrereqs(['nft', 'tc']);

interface PlanDoc {
  changes: { kind: string; id: string; action: string; cause: string; fields?: string[] }[];
}

describe.skipIf(skip)('limits as resources: plan, idempotence, drift, down, conflicts', () => {
  let t: LimitTopology;
  let config: string;
  let before: unknown;
  const tc = (args: string[]) => nsExec(t.client, 'tc', args);

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createLimitTopology();
    // the user's own traffic control: a root pfifo on the uplink, an HTB and a clsact with a
    // filter on another device
    const other = await vethPair(t.client, t.server, {
      addrA: '10.200.92.1/24',
      addrB: '10.200.92.2/24',
    });
    await tc(['qdisc', 'add', 'dev', t.uplink, 'root', 'handle', '7:', 'pfifo', 'limit', '500']);
    await tc(['qdisc', 'add', 'dev', other.ifA, 'root', 'handle', '5:', 'htb', 'default', '1']);
    await tc([
      'class',
      'add',
      'dev',
      other.ifA,
      'parent',
      '5:',
      'classid',
      '5:1',
      'htb',
      'rate',
      '1gbit',
    ]);
    await tc(['qdisc', 'add', 'dev', other.ifA, 'clsact']);
    await tc([
      'filter',
      'add',
      'dev',
      other.ifA,
      'ingress',
      'pref',
      '10',
      'protocol',
      'ip',
      'u32',
      'match',
      'ip',
      'dport',
      '22',
      '0xffff',
      'action',
      'mirred',
      'egress',
      'mirror',
      'dev',
      other.ifA,
    ]);
    before = await qdiscs(t.client);
    config = `version: 1
ipv6: tunnel
${t.tunnels.replace('    peers:', '    limit: { download: 80Mbit }\n    peers:')}rules:
  - name: tunlim
    match: { name: awgt-no-such-exe-tunlim }
    target: t
    limit: { upload: 20Mbit, download: 50Mbit }
  - name: dirlim
    match: { name: awgt-no-such-exe-dirlim }
    target: direct
    limit: { upload: 10Mbit }
`;
  }, 240_000);

  afterAll(async () => {
    await t?.destroy();
  }, 120_000);

  const diff = async (): Promise<PlanDoc> => {
    const cfg = writeConfig(t.env, 'client.yaml', config);
    const r = await t.awg(['diff', '-f', cfg, '--json']);
    expect([0, 2], showRun(r)).toContain(r.code);
    return r.json<PlanDoc>();
  };
  const real = (p: PlanDoc) => p.changes.filter((c) => c.action !== 'noop');
  const ids = {
    tunEgress: 'shaper/awg-t/egress',
    tunIngress: 'shaper/awg-t/ingress',
    upEgress: () => `shaper/${t.uplink}/egress`,
    upIngress: () => `shaper/${t.uplink}/ingress`,
  };

  it('awg diff plans a shaper per TUN and uplink direction and their ifbs; apply builds them; a second apply is a no-op', async () => {
    const p = await diff();
    const shapers = real(p).filter((c) => c.kind === 'shaper');
    expect(shapers.map((c) => [c.id, c.action]).sort()).toEqual(
      [
        [ids.tunEgress, 'create'],
        [ids.tunIngress, 'create'],
        [ids.upEgress(), 'create'],
        // the direct rule limits upload only, the tunnel rule's download is still a class here
        [ids.upIngress(), 'create'],
      ].sort(),
    );
    expect(real(p).filter((c) => c.kind === 'link' && c.id.startsWith('link/awgq-')).length).toBe(
      3,
    );

    const r = await t.apply(config);
    expect(r.code, showRun(r)).toBe(0);
    expect(r.mutations.some((m) => m.includes('tc -batch -'))).toBe(true);
    const again = await t.apply(config, ['--json']);
    expect(again.code, showRun(again)).toBe(0);
    expect(again.json<{ mutations: number }>().mutations).toBe(0);
    expect(real(await diff())).toEqual([]);
    // what was built: the HTB on the TUN, clsacts on the TUN and the uplink, the user's pfifo kept
    const q = (await qdiscs(t.client)) as { kind: string; dev: string; handle: string }[];
    expect(q).toContainEqual(expect.objectContaining({ dev: 'awg-t', kind: 'htb', handle: '1:' }));
    expect(q).toContainEqual(expect.objectContaining({ dev: t.uplink, kind: 'clsact' }));
    expect(q).toContainEqual(
      expect.objectContaining({ dev: t.uplink, kind: 'pfifo', handle: '7:' }),
    );
  }, 180_000);

  it('drift: a deleted qdisc, class or redirect is named by awg diff and repaired by the next apply', async () => {
    const upIfb = ifbName(t.uplink, 'ingress');
    await tc(['qdisc', 'del', 'dev', upIfb, 'root']);
    await tc(['class', 'del', 'dev', 'awg-t', 'classid', '1:11']);
    await tc(['filter', 'del', 'dev', t.uplink, 'egress', 'pref', String(0xa700 + 2 * 2)]);
    const p = await diff();
    expect(
      real(p)
        .map((c) => [c.id, c.action, c.cause])
        .sort(),
    ).toEqual(
      [
        [ids.tunEgress, 'update', 'drift'],
        [ids.upEgress(), 'update', 'drift'],
        [ids.upIngress(), 'update', 'drift'],
      ].sort(),
    );
    const r = await t.apply(config);
    expect(r.code, showRun(r)).toBe(0);
    expect(real(await diff())).toEqual([]);
  }, 180_000);

  it('under the daemon a deleted qdisc and a deleted class are repaired at once (traffic-control events; drift timer off)', async () => {
    const cfg = writeConfig(t.env, 'client.yaml', config);
    const up = startUp(t.client, t.env, cfg, ['--drift-interval', '0']);
    try {
      await up.waitEvent(converged, 0, 120_000);
      const from = up.mark();
      const ifb = ifbName('awg-t', 'ingress');
      await tc(['qdisc', 'del', 'dev', ifb, 'root']);
      await up.waitEvent(
        (e) => e.type === 'drift' && (e as { ids: string[] }).ids.includes(ids.tunIngress),
        from,
        60_000,
      );
      await up.waitEvent(converged, from, 60_000);
      const from2 = up.mark();
      await tc(['class', 'del', 'dev', 'awg-t', 'classid', '1:11']);
      await up.waitEvent(
        (e) => e.type === 'drift' && (e as { ids: string[] }).ids.includes(ids.tunEgress),
        from2,
        60_000,
      );
      await up.waitEvent(converged, from2, 60_000);
      expect(real(await diff())).toEqual([]);
    } finally {
      up.proc.child.kill('SIGTERM');
      await up.proc.exited;
    }
  }, 300_000);

  it('awg down leaves tc qdisc show exactly as before the first apply (the user’s own qdiscs untouched)', async () => {
    // `awg up` stopping took everything down; apply again so down has something to remove
    const r = await t.apply(config);
    expect(r.code, showRun(r)).toBe(0);
    const d = await t.awg(['down']);
    expect(d.code, showRun(d)).toBe(0);
    expect(await qdiscs(t.client)).toEqual(before);
    const links = (await nsExec(t.client, 'ip', ['-o', 'link'])).stdout;
    expect(links).not.toContain('awgq-');
  }, 180_000);

  it('a clsact on the uplink that awg did not create is a conflict: nothing is touched', async () => {
    await tc(['qdisc', 'add', 'dev', t.uplink, 'clsact']);
    const foreign = await qdiscs(t.client);
    try {
      const r = await t.apply(config, ['--json']);
      expect(r.code, showRun(r)).not.toBe(0);
      const j = r.json<{ error?: { kind: string; message: string } }>();
      expect(j.error?.kind).toBe('conflict');
      expect(j.error?.message).toContain(`${t.uplink} has a clsact qdisc awg did not create`);
      expect(await qdiscs(t.client)).toEqual(foreign);
      const tables = (await nsExec(t.client, 'nft', ['list', 'tables'])).stdout;
      expect(tables).not.toContain('inet awg');
    } finally {
      await tc(['qdisc', 'del', 'dev', t.uplink, 'clsact']);
    }
    expect(await qdiscs(t.client)).toEqual(before);
  }, 180_000);
});
