/**
 * The firewall driver's loads of destination sets against the real kernel (load.ts, linux.ts):
 * - from nothing, the static sets are declared and filled over netlink before the table's
 *   transaction, which carries no element; the kernel holds every interval;
 * - a change of the rules keeps the sets (their elements, learned entries included) and the
 *   transaction deletes and re-adds only chains; a new set ahead of kept ones is loaded in
 *   the transaction's text (the kernel lists sets in creation order);
 * - an element deleted or added by hand (the set's comment kept) is drift: the observed
 *   comment tells the kernel's count, and an apply loads the set again; the verified
 *   generation spares the count when nothing changed;
 * - a list edit changes the set in place: the elements that differ are deleted and added over
 *   netlink in one transaction, and that is the whole apply — no `nft -f` transaction, no
 *   read-back (the set keeps its handle, the learned set after it its entries); the kernel's
 *   comment still names the first content, the state directory's record the one it holds
 *   (resources/firewall/set-contents.ts), so observation reads the new content; the live
 *   elements of the digest it drops are kept for a rollback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import { DEFAULT_CLAIMS } from '../../src/pipeline/claims.js';
import type { FirewallSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import {
  createLinuxFirewallDriver,
  nativeSetKernel,
  type SetKernel,
} from '../../src/resources/firewall/linux.js';
import { firewallSpec } from '../../src/resources/firewall/render.js';
import { knownElements, staticSets } from '../../src/resources/firewall/set-elements.js';
import type { ExecOptions, ExecResult } from '../../src/util/exec.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { MemoryStateStore } from '../../src/util/state.js';
import { NsExec } from '../helpers/exec.js';
import { destPolicy, type DestRule } from '../helpers/dest-policy.js';
import { netnsPath, nsExec, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft']);

const TABLE = 'awgs';
const claims: Claims = { ...DEFAULT_CLAIMS, nftTable: TABLE };

/** `n` disjoint IPv4 intervals in 100.64.0.0/10, one per /24: a host, the /24, or a range */
function v4List(n: number, salt = 0): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const net = `100.${64 + (i >> 8)}.${i & 255}`;
    const k = (i + salt) % 3;
    out.push(k === 0 ? `${net}.1` : k === 1 ? `${net}.0/24` : `${net}.10-${net}.20`);
  }
  return out;
}

const mk = (action: 'create' | 'update', spec: FirewallSpec): Change<'firewall'> => ({
  kind: 'firewall',
  id: `firewall/inet/${spec.table}`,
  action,
  after: spec,
  reason: '',
  cause: 'initial',
});

describe.skipIf(skip)(
  'firewall driver: destination sets loaded over netlink, kept, checked',
  () => {
    const ns = useNetns('fwsets');
    let kernel: SetKernel;
    let counting: SetKernel;
    let dumps = 0;
    const state = new MemoryStateStore();
    /** the `nft -f` inputs of the last context */
    let inputs: string[] = [];
    const ctx = (): ApplyContext & { reporter: MemoryReporter } => {
      const reporter = new MemoryReporter();
      const exec = new NsExec(ns.name, false, reporter);
      const mutate = exec.mutate.bind(exec);
      inputs = [];
      exec.mutate = (cmd: string, args: string[], o: ExecOptions = {}): Promise<ExecResult> => {
        if (o.input !== undefined) inputs.push(o.input);
        return mutate(cmd, args, o);
      };
      return { exec, reporter, state, dryRun: false, claims };
    };
    const scope = () => ({ desired: { resources: [], warnings: [] }, claims, state });
    const driver = () => createLinuxFirewallDriver({ exec: new NsExec(ns.name), kernel: counting });

    const policy = (o: { killSwitch?: 'on' | 'off'; d4?: string[]; first?: string[] } = {}) => {
      const rules: DestRule[] = [
        ...(o.first ? [{ name: 'first', v4: o.first }] : []),
        {
          name: 'listed',
          v4: o.d4 ?? v4List(3000),
          learned4: true,
          v6: ['2001:db8::/48', '2001:db8:1::5'],
        },
      ];
      return firewallSpec(destPolicy(TABLE, rules, o.killSwitch));
    };
    /** the intervals the kernel holds in a set (nft's own listing) */
    const held = async (set: string): Promise<number> => {
      const r = await nsExec(ns.name, 'nft', ['-j', 'list', 'set', 'inet', TABLE, set]);
      const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
      return doc.nftables.find((x) => x.set)?.set?.elem?.length ?? 0;
    };

    beforeAll(async () => {
      kernel = await nativeSetKernel(netnsPath(ns.name));
      counting = {
        stamp: () => kernel.stamp(),
        dump: (t, s) => (dumps++, kernel.dump(t, s)),
        fill: (t, s, e) => kernel.fill(t, s, e),
        update: (t, s, r, a) => kernel.update(t, s, r, a),
      };
    });
    afterAll(async () => {
      await nsExec(ns.name, 'nft', ['delete', 'table', 'inet', TABLE], { allowFail: true });
    });

    it('from nothing: sets filled over netlink before a transaction without elements', async () => {
      const spec = policy();
      const c = ctx();
      expect(await driver().apply(mk('create', spec), c)).toBe('changed');
      expect(c.reporter.mutations).toEqual([
        expect.stringMatching(
          /^nft -f - \(declare set\(s\) d4_listed, l4_listed, d6_listed in table inet awgs/,
        ),
        expect.stringMatching(/^netlink: fill nft set inet awgs d4_listed \(3\d\d\d intervals\)$/),
        'netlink: fill nft set inet awgs d6_listed (2 intervals)',
        expect.stringMatching(/^nft -f - \(load table inet awgs/),
      ]);
      expect(inputs[1]).not.toContain('add element');
      expect(inputs[1]).not.toContain('delete table');
      const [d4] = staticSets(spec.ruleset);
      expect(await held('d4_listed')).toBe(d4!.count);
      expect(await held('d6_listed')).toBe(2);
      dumps = 0;
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(spec);
      // the load's generation is the verified one: no count read
      expect(dumps).toBe(0);
    });

    it('a change of the rules keeps the sets and their entries; only chains are replaced', async () => {
      await nsExec(ns.name, 'nft', [
        'add',
        'element',
        'inet',
        TABLE,
        'l4_listed',
        '{ 198.51.100.7 timeout 1h }',
      ]);
      const spec = policy({ killSwitch: 'on' });
      const c = ctx();
      dumps = 0;
      expect(await driver().apply(mk('update', spec), c)).toBe('changed');
      expect(c.reporter.mutations.filter((m) => !m.includes('killswitch-boot'))).toEqual([
        'nft -f - (load table inet awgs, ' +
          `${spec.ruleset.split('\n').length} lines; set(s) kept: d4_listed, l4_listed, d6_listed)`,
      ]);
      expect(inputs[0]).toMatch(
        /^add table inet awgs\nflush table inet awgs\ndelete chain inet awgs /,
      );
      expect(inputs[0]).not.toMatch(/add element|delete set|delete table/);
      // a foreign element was added (the learned one) since the load: the kept sets were counted
      expect(dumps).toBe(2);
      expect(await held('d4_listed')).toBe(staticSets(spec.ruleset)[0]!.count);
      expect(await held('l4_listed')).toBe(1);
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(spec);
    });

    it('an element deleted or added by hand is drift; an apply loads the set again', async () => {
      const spec = policy({ killSwitch: 'on' });
      const [d4] = staticSets(spec.ruleset);
      await nsExec(ns.name, 'nft', [
        'delete',
        'element',
        'inet',
        TABLE,
        'd4_listed',
        '{ 100.64.0.1 }',
      ]);
      const seen = (await driver().observe(scope())).resources[0]!.spec.ruleset;
      expect(seen).toContain(`comment "awg n=${d4!.count - 1} sha256=${d4!.digest}"`);
      expect(seen.replace(`n=${d4!.count - 1} `, `n=${d4!.count} `)).toBe(spec.ruleset);
      const c = ctx();
      expect(await driver().apply(mk('update', spec), c)).toBe('changed');
      // the set is loaded again in the transaction: it is the first set, so all after it too
      expect(inputs[0]).toContain('delete set inet awgs d4_listed');
      expect(inputs[0]).toContain('add element inet awgs d4_listed');
      expect(await held('d4_listed')).toBe(d4!.count);
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(spec);
      // added by hand (outside every interval)
      await nsExec(ns.name, 'nft', [
        'add',
        'element',
        'inet',
        TABLE,
        'd6_listed',
        '{ 2001:db8:9::1 }',
      ]);
      const seen6 = (await driver().observe(scope())).resources[0]!.spec.ruleset;
      expect(seen6).toMatch(/comment "awg n=3 sha256=/);
      expect(await driver().apply(mk('update', spec), ctx())).toBe('changed');
      expect(await held('d6_listed')).toBe(2);
      dumps = 0;
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(spec);
      expect(dumps).toBe(0);
    });

    /** a set's kernel handle (`nft -a`) */
    const handle = async (set: string): Promise<number> => {
      const r = await nsExec(ns.name, 'nft', ['-a', '-j', 'list', 'set', 'inet', TABLE, set]);
      const doc = JSON.parse(r.stdout) as { nftables: { set?: { handle: number } }[] };
      return doc.nftables.find((x) => x.set)!.set!.handle;
    };

    it('a list edit changes the set in place (its handle kept); the dropped digest stays known for a rollback', async () => {
      const before = policy({ killSwitch: 'on' });
      const old = staticSets(before.ruleset)[0]!;
      const h = await handle('d4_listed');
      await nsExec(ns.name, 'nft', [
        'add',
        'element',
        'inet',
        TABLE,
        'l4_listed',
        '{ 198.51.100.9 timeout 1h }',
      ]);
      // as in a new process (`awg apply` after an edit): the live digest's elements unknown
      // (this process keeps 64 digests; 64 other renders push it out)
      for (let i = 0; i < 64; i++) policy({ d4: [`10.${i}.0.0/16`] });
      expect(knownElements(old.digest)).toBeUndefined();
      const edited = policy({ killSwitch: 'on', d4: v4List(3000, 1) });
      expect(staticSets(edited.ruleset)[0]!.digest).not.toBe(old.digest);
      const c = ctx();
      expect(await driver().apply(mk('update', edited), c)).toBe('changed');
      // the difference over netlink (one transaction), and nothing else: no `nft -f`
      expect(c.reporter.mutations.filter((m) => !m.includes('killswitch-boot'))).toEqual([
        'netlink: change nft set inet awgs d4_listed in place (+3000 −3000)',
      ]);
      expect(inputs).toEqual([]);
      expect(await handle('d4_listed')).toBe(h);
      expect(await held('d4_listed')).toBe(3000);
      // the learned set after it was kept with its entry
      expect(await held('l4_listed')).toBeGreaterThan(0);
      // the kernel's comment still names the first content; the observation reads the record
      const raw = (await nsExec(ns.name, 'nft', ['list', 'set', 'inet', TABLE, 'd4_listed']))
        .stdout;
      expect(raw).toContain(`sha256=${old.digest}`);
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(edited);
      // read before the transaction dropped them (the state directory's copy of what awg
      // loaded, the generation unchanged since: set-store.ts): what the rollback loads
      expect(knownElements(old.digest)).toEqual(v4List(3000));
      // back: the old content again, in place too
      const back = { ...before };
      expect(await driver().apply(mk('update', back), ctx())).toBe('changed');
      expect(await handle('d4_listed')).toBe(h);
      expect(await held('d4_listed')).toBe(old.count);
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(before);
    });

    it('a list edit in a new process: the old elements from the state directory, no dump; a stale copy corrected from one', async () => {
      const before = policy({ killSwitch: 'on' });
      const old = staticSets(before.ruleset)[0]!;
      const forget = () => {
        for (let i = 0; i < 64; i++) policy({ d4: [`10.${i}.0.0/16`] });
      };
      forget();
      expect(knownElements(old.digest)).toBeUndefined();
      const edited = policy({ killSwitch: 'on', d4: v4List(3000, 2) });
      dumps = 0;
      const c = ctx();
      expect(await driver().apply(mk('update', edited), c)).toBe('changed');
      expect(dumps).toBe(0);
      expect(c.reporter.mutations[0]).toBe(
        'netlink: change nft set inet awgs d4_listed in place (+3000 −3000)',
      );
      expect(await held('d4_listed')).toBe(3000);
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(edited);
      // by hand: one interval the next edit drops is deleted, another address added (the
      // count stays: the copy is stale and the count check cannot tell)
      await nsExec(ns.name, 'nft', [
        'delete element inet awgs d4_listed { 100.64.0.10-100.64.0.20 }; ' +
          'add element inet awgs d4_listed { 100.64.0.30 }',
      ]);
      forget();
      dumps = 0;
      // rendered again, as by the new process (its elements known to it)
      expect(await driver().apply(mk('update', policy({ killSwitch: 'on' })), ctx())).toBe(
        'changed',
      );
      // the counts checked (the generation moved), the delta from the copy refused by the
      // kernel (its interval to delete is gone), then computed from the set's dump
      expect(dumps).toBe(staticSets(before.ruleset).length + 1);
      expect(await held('d4_listed')).toBe(old.count);
      const listed = (await nsExec(ns.name, 'nft', ['list', 'set', 'inet', TABLE, 'd4_listed']))
        .stdout;
      expect(listed).not.toContain('100.64.0.30');
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(before);
    });

    it('a new set ahead of the kept ones: staged, and the sets after it loaded in the transaction', async () => {
      const spec = policy({ killSwitch: 'on', first: ['192.0.2.0/24'] });
      const c = ctx();
      expect(await driver().apply(mk('update', spec), c)).toBe('changed');
      expect(c.reporter.mutations[0]).toMatch(/declare set\(s\) d4_first /);
      expect(inputs.at(-1)).toContain('delete set inet awgs d4_listed');
      expect((await driver().observe(scope())).resources[0]!.spec).toEqual(spec);
      expect(await held('d4_first')).toBe(1);
    });
  },
);
