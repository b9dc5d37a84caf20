/**
 * Step 2 end-to-end: `awg apply` converges a fresh network namespace to the plan, a second
 * apply performs zero mutations, hand-made drift is named by `awg diff` and repaired exactly,
 * and `awg down` returns the namespace (routes, rules, links, addresses, nft, sysctls, DNS
 * file, cgroup subtree) to the snapshot taken before the first apply — foreign objects
 * untouched throughout. These configs need no tunnel engine.
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  cgroupDir,
  cleanupAwgEnv,
  ipRoutes,
  ipRules,
  makeAwgEnv,
  nftTable,
  show,
  snapshotHost,
  sysctl,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
} from '../helpers/netns.js';
import { runProgram } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

/**
 * the programs the rules match, named for this run (runProgram): never a real program of the
 * host (apt, firefox…) that a placer could move
 */
const APT = runProgram('awgt-apt');
const TELEMETRY = runProgram('awgt-telemetry-agent');

/** kill switch (LAN allowed), v6 blocked for tunnelled apps, one direct and one block rule */
const KS_CONFIG = `version: 1
killSwitch: { enabled: true, allowLan: true }
ipv6: block
rules:
  - name: upd
    match: { name: ${APT} }
    target: direct
  - name: tele
    match: { name: ${TELEMETRY} }
    target: block
`;

interface PlanDoc {
  changes: {
    kind: string;
    id: string;
    action: string;
    cause: string;
    after?: Record<string, unknown>;
  }[];
  summary: Record<string, number>;
  foreign: { kind: string; id: string; relation: string; description: string }[];
}
interface ApplyDoc {
  outcome: string;
  mutations: number;
  changed: number;
  plan?: PlanDoc;
  error?: { kind: string; message: string };
}

function expectedIds(e: AwgEnv): string[] {
  return [
    'sysctl/net.ipv4.conf.all.src_valid_mark',
    'sysctl/net.netfilter.nf_conntrack_acct',
    `cgroup/${e.cgroupRoot}`,
    `cgroup/${e.cgroupRoot}/tele`,
    `cgroup/${e.cgroupRoot}/upd`,
    'firewall/inet/awg',
  ].sort();
}

interface NftJson {
  nftables: Record<
    string,
    {
      family?: string;
      table?: string;
      name?: string;
      comment?: string;
      expr?: unknown[];
      chain?: string;
    }
  >[];
}

async function nftJson(ns: string): Promise<NftJson> {
  return JSON.parse((await nsExec(ns, 'nft', ['-j', 'list', 'ruleset'])).stdout) as NftJson;
}

describe.skipIf(skip)(
  'e2e: apply, idempotence, drift and down (kill switch, direct/block rules)',
  () => {
    let ns: string;
    let e: AwgEnv;
    beforeEach(async () => {
      await sweepStaleNetns();
      ns = await createNetns('e2e-apply');
      e = makeAwgEnv();
    });
    afterEach(async () => {
      if (ns) await destroyNetns(ns);
      cleanupAwgEnv(e);
    });

    it('converges a fresh namespace to the plan; a second apply changes nothing', async () => {
      const cfg = writeConfig(e, 'ks.yaml', KS_CONFIG);
      const rulesBefore = [await ipRules(ns, 4), await ipRules(ns, 6)];
      const routesBefore = [await ipRoutes(ns, 4), await ipRoutes(ns, 6)];

      const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
      expect(d.code, show(d)).toBe(2);
      const plan = d.json<PlanDoc>();
      expect(plan.changes.map((c) => c.id).sort()).toEqual(expectedIds(e));
      expect(plan.changes.every((c) => c.action === 'create' && c.cause === 'initial')).toBe(true);

      const a = await awg(ns, e, ['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);
      // one mutation per planned object: two sysctl writes, three mkdirs, one nft transaction;
      // and the kill switch's boot copy written beside the table (state dir, for the early unit)
      expect(a.mutations).toHaveLength(7);
      expect(a.mutations.filter((m) => m.startsWith('[#] nft -f -'))).toHaveLength(1);
      expect(a.mutations.filter((m) => /^\[#\] write .*killswitch-boot\.nft/.test(m))).toHaveLength(
        1,
      );
      expect(existsSync(join(e.stateDir, 'killswitch-boot.nft'))).toBe(true);
      expect(a.stdout).toMatch(/Applied: 6 change\(s\), 7 mutation\(s\); verified/);
      // the accounting sysctl is written after the table (whose `ct` rules load conntrack)
      const order = a.mutations.map((m) =>
        m.includes('nf_conntrack_acct') ? 'acct' : m.startsWith('[#] nft -f') ? 'nft' : '',
      );
      expect(order.indexOf('acct')).toBeGreaterThan(order.indexOf('nft'));

      // kernel state matches the plan
      expect(await sysctl(ns, 'net.ipv4.conf.all.src_valid_mark')).toBe('1');
      expect(await sysctl(ns, 'net.netfilter.nf_conntrack_acct')).toBe('1');
      for (const rel of ['', 'tele', 'upd']) expect(existsSync(join(cgroupDir(e), rel))).toBe(true);
      const nft = await nftJson(ns);
      const table = nft.nftables.find((o) => o.table?.name === 'awg')?.table;
      expect(table).toMatchObject({ family: 'inet', name: 'awg' });
      expect(await nftTable(ns, 'awg')).toMatch(/comment "managed-by=awg owner=[0-9a-f]{12}"/);
      const rules = nft.nftables.filter((o) => o.rule?.table === 'awg').map((o) => o.rule!);
      const byComment = (c: string) => rules.find((r) => r.comment === c);
      expect(byComment('kill-switch')).toMatchObject({ chain: 'filter_out' });
      expect(JSON.stringify(byComment('kill-switch')!.expr)).toContain('"drop"');
      expect(JSON.stringify(byComment('app/tele')!.expr)).toContain('"drop"');
      expect(JSON.stringify(byComment('app/upd')!.expr)).toContain('"accept"');
      expect(JSON.stringify(byComment('app/upd')!.expr)).toContain(`${e.cgroupRoot}/upd`);
      const lan = JSON.stringify(byComment('lan')!.expr);
      expect(lan).toContain('192.168.0.0');
      // no routes or rules for a config without tunnels
      expect([await ipRules(ns, 4), await ipRules(ns, 6)]).toEqual(rulesBefore);
      expect([await ipRoutes(ns, 4), await ipRoutes(ns, 6)]).toEqual(routesBefore);

      // the plan's firewall text is what the kernel holds (the table's marker with our owner tag)
      const fw = plan.changes.find((c) => c.kind === 'firewall')!;
      const listed = (await nftTable(ns, 'awg'))!.replace(
        /comment "managed-by=awg owner=[0-9a-f]{12}"/,
        'comment "managed-by=awg"',
      );
      for (const line of String(fw.after!.ruleset).split('\n')) {
        const l = line.trim();
        if (l.startsWith('chain ') || l.startsWith('comment ')) expect(listed).toContain(l);
      }

      const again = await awg(ns, e, ['apply', '-f', cfg]);
      expect(again.code, show(again)).toBe(0);
      expect(again.mutations).toEqual([]);
      expect(again.stdout).toContain('No changes');
      const j = await awg(ns, e, ['apply', '-f', cfg, '--json']);
      expect(j.code, show(j)).toBe(0);
      expect(j.json<ApplyDoc>()).toMatchObject({ outcome: 'unchanged', mutations: 0, changed: 0 });
      const d2 = await awg(ns, e, ['diff', '-f', cfg]);
      expect(d2.code, show(d2)).toBe(0);
      const st = await awg(ns, e, ['status', '--json']);
      expect(st.code, show(st)).toBe(0);
      expect(st.json<{ state: string }>().state).toBe('converged');
    });

    it('names hand-made drift in diff (cause drift) and repairs exactly those objects', async () => {
      const cfg = writeConfig(e, 'ks.yaml', KS_CONFIG);
      const a = await awg(ns, e, ['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);

      // drift: flush our nft table, remove one rule cgroup, flip our sysctl back
      await nsExec(ns, 'nft', ['flush', 'table', 'inet', 'awg']);
      rmdirSync(join(cgroupDir(e), 'upd'));
      await nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.src_valid_mark=0']);
      const drifted = [
        'sysctl/net.ipv4.conf.all.src_valid_mark',
        `cgroup/${e.cgroupRoot}/upd`,
        'firewall/inet/awg',
      ].sort();

      const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
      expect(d.code, show(d)).toBe(2);
      const plan = d.json<PlanDoc>();
      expect(plan.changes.map((c) => c.id).sort()).toEqual(drifted);
      expect(plan.changes.every((c) => c.cause === 'drift')).toBe(true);
      expect(plan.summary.drift).toBe(3);
      const text = await awg(ns, e, ['diff', '-f', cfg]);
      expect(text.code).toBe(2);
      for (const id of drifted) expect(text.stdout).toContain(id);

      const r = await awg(ns, e, ['apply', '-f', cfg, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const doc = r.json<ApplyDoc>();
      expect(doc.outcome).toBe('converged');
      expect(doc.plan!.changes.map((c) => c.id).sort()).toEqual(drifted);
      // one mutation per drifted object: sysctl write, mkdir, nft transaction
      expect(doc.mutations).toBe(3);
      expect(doc.changed).toBe(3);
      expect(await sysctl(ns, 'net.ipv4.conf.all.src_valid_mark')).toBe('1');
      expect(existsSync(join(cgroupDir(e), 'upd'))).toBe(true);
      expect(await nftTable(ns, 'awg')).toContain('comment "kill-switch"');

      const d2 = await awg(ns, e, ['diff', '-f', cfg]);
      expect(d2.code, show(d2)).toBe(0);
    });

    it('down restores the snapshot; foreign objects stay byte-identical; a foreign awg-* link is a conflict', async () => {
      // foreign objects first: nft table, ip rule, route in table 100 (v4 and v6), an unmarked awg-foo tun
      await nsExec(ns, 'nft', ['-f', '-'], {
        input:
          'table inet foreign {\n  chain out {\n    type filter hook output priority 10; policy accept;\n    ip daddr 10.200.98.1 counter accept comment "theirs"\n  }\n}\n',
      });
      await nsExec(ns, 'ip', ['rule', 'add', 'priority', '1000', 'fwmark', '0x1', 'table', '100']);
      await nsExec(ns, 'ip', [
        '-6',
        'rule',
        'add',
        'priority',
        '1001',
        'fwmark',
        '0x1',
        'table',
        '100',
      ]);
      await nsExec(ns, 'ip', ['route', 'add', 'blackhole', '10.200.99.0/24', 'table', '100']);
      await nsExec(ns, 'ip', [
        '-6',
        'route',
        'add',
        'blackhole',
        'fd00:200::99:0/112',
        'table',
        '100',
      ]);
      await nsExec(ns, 'ip', ['tuntap', 'add', 'dev', 'awg-foo', 'mode', 'tun']);
      const foreignState = async () => ({
        nft: (await nsExec(ns, 'nft', ['-j', 'list', 'table', 'inet', 'foreign'])).stdout,
        rules4: (await nsExec(ns, 'ip', ['-j', '-4', 'rule', 'show', 'priority', '1000'])).stdout,
        rules6: (await nsExec(ns, 'ip', ['-j', '-6', 'rule', 'show', 'priority', '1001'])).stdout,
        routes4: (await nsExec(ns, 'ip', ['-j', '-4', 'route', 'show', 'table', '100'])).stdout,
        routes6: (await nsExec(ns, 'ip', ['-j', '-6', 'route', 'show', 'table', '100'])).stdout,
        link: (await nsExec(ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', 'awg-foo'])).stdout,
      });
      const foreign0 = await foreignState();
      expect(foreign0.routes4).toContain('10.200.99.0/24');
      const before = await snapshotHost(ns, e);

      const cfg = writeConfig(e, 'ks.yaml', KS_CONFIG);
      const d = await awg(ns, e, ['diff', '-f', cfg, '--json']);
      expect(d.code, show(d)).toBe(2);
      expect(d.json<PlanDoc>().foreign).toContainEqual(
        expect.objectContaining({ kind: 'link', id: 'link/awg-foo', relation: 'conflict' }),
      );
      expect(await foreignState()).toEqual(foreign0);

      const a = await awg(ns, e, ['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);
      expect(a.mutations.join('\n')).not.toMatch(/awg-foo|foreign|table 100|priority 100[01]/);
      expect(await foreignState()).toEqual(foreign0);
      const st = await awg(ns, e, ['status']);
      expect(st.stdout).toMatch(/conflict: link\/awg-foo/);
      const d2 = await awg(ns, e, ['diff', '-f', cfg]);
      expect(d2.code, show(d2)).toBe(0);
      expect(await foreignState()).toEqual(foreign0);

      const down = await awg(ns, e, ['down']);
      expect(down.code, show(down)).toBe(0);
      // the six objects, and the boot copy of the kill switch
      expect(down.mutations).toHaveLength(7);
      // a fresh namespace's default, put back
      expect(await sysctl(ns, 'net.netfilter.nf_conntrack_acct')).toBe('0');
      expect(existsSync(join(e.stateDir, 'killswitch-boot.nft'))).toBe(false);
      expect(await foreignState()).toEqual(foreign0);
      expect(await snapshotHost(ns, e)).toEqual(before);

      // down again: nothing to do, nothing changes
      const again = await awg(ns, e, ['down']);
      expect(again.code, show(again)).toBe(0);
      expect(again.mutations).toEqual([]);
      expect(await snapshotHost(ns, e)).toEqual(before);
    });

    it('down after a sysctl that was already at the wanted value restores nothing it did not change', async () => {
      // src_valid_mark already 1 before awg: down must leave it at 1 (its original)
      await nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.src_valid_mark=1']);
      mkdirSync(e.stateDir, { recursive: true });
      const before = await snapshotHost(ns, e);
      const cfg = writeConfig(e, 'ks.yaml', KS_CONFIG);
      const a = await awg(ns, e, ['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);
      expect(a.mutations.some((m) => m.includes('src_valid_mark'))).toBe(false);
      const down = await awg(ns, e, ['down']);
      expect(down.code, show(down)).toBe(0);
      expect(await sysctl(ns, 'net.ipv4.conf.all.src_valid_mark')).toBe('1');
      expect(await snapshotHost(ns, e)).toEqual(before);
    });
  },
);
