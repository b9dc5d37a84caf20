/**
 * A list edit alone is the set's delta alone (linux.ts): no `nft -f` transaction, no
 * read-back; the verify's observation reuses the listing read before the delta while the
 * nf_tables generation moved by exactly the delta's transactions, and reads afresh after any
 * other change. On a fake kernel whose generation the fake `nft` and the fake netlink share.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';

/** the namespace's nf_tables generation, as the fakes move it */
const kernelGen = vi.hoisted(() => ({ gen: 100 }));
vi.mock('../../../../src/native/nftset.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../../src/native/nftset.js')>()),
  nftGeneration: () => kernelGen.gen,
}));

import type { Change } from '../../../../src/model/change.js';
import type { FirewallSpec } from '../../../../src/model/resources.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import {
  carryListing,
  createLinuxFirewallDriver,
  readRuleset,
  type SetKernel,
} from '../../../../src/resources/firewall/linux.js';
import { parseTableListing } from '../../../../src/resources/firewall/parse.js';
import { firewallSpec, renderTable } from '../../../../src/resources/firewall/render.js';
import { readContents } from '../../../../src/resources/firewall/set-contents.js';
import { stampMovedBy, verifiedStamp } from '../../../../src/resources/firewall/set-kernel.js';
import { ReadPassExec } from '../../../../src/resources/read-pass.js';
import { NFT_RULESET_READ } from '../../../../src/resources/reads.js';
import type { Exec, ExecOptions, ExecResult, RecordOptions } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { destPolicy, type DestRule } from '../../../helpers/dest-policy.js';

const TABLE = 'awg';
const claims = { ...DEFAULT_CLAIMS, nftTable: TABLE };

type Opts = { d4?: string[]; killSwitch?: 'on' };
const policy = (o: Opts) => {
  const rules: DestRule[] = [
    { name: 'r', v4: o.d4 ?? ['192.0.2.0/24', '198.51.100.7'], learned4: true },
  ];
  return destPolicy(TABLE, rules, o.killSwitch);
};
const spec = (o: Opts = {}): FirewallSpec => firewallSpec(policy(o));
/** the table as the kernel lists it (`nft -t`: indented, no elements) */
const listing = (o: Opts = {}): string => renderTable(policy(o));

/** this host's `nft`: the table's listing, a load (`nft -f`) one transaction */
class FakeNft implements Exec {
  readonly log: string[] = [];
  reads = 0;
  /** what the next `nft -f` leaves the listing as */
  loads: string | undefined;
  constructor(
    public listing: string,
    readonly dryRun = false,
  ) {}
  get onHost(): boolean {
    return true;
  }
  get mutations(): number {
    return this.log.length;
  }
  async read(cmd: string, args: string[]): Promise<ExecResult> {
    expect([cmd, args]).toEqual([NFT_RULESET_READ[0], NFT_RULESET_READ[1]]);
    this.reads++;
    return { stdout: this.listing, stderr: '', code: 0 };
  }
  async mutate(cmd: string, args: string[], o: ExecOptions = {}): Promise<ExecResult> {
    if (!this.record(o.display ?? [cmd, ...args].join(' '))) return ok;
    if (args[0] === '-f' && this.loads !== undefined) this.listing = this.loads;
    kernelGen.gen++;
    return ok;
  }
  record(display: string, _o?: RecordOptions): boolean {
    this.log.push(display);
    return !this.dryRun;
  }
}
const ok: ExecResult = { stdout: '', stderr: '', code: 0 };

/** the kernel's sets over netlink: each change one transaction; `before`: runs first, once */
function fakeKernel() {
  const k = {
    updates: [] as string[],
    before: undefined as (() => void) | undefined,
    stamp: () => `boot/1/${kernelGen.gen}`,
    dump: () => {
      throw new Error('no dump in these tests');
    },
    fill: () => void kernelGen.gen++,
    update: (_t: string, set: string) => {
      const f = k.before;
      k.before = undefined;
      f?.();
      k.updates.push(set);
      kernelGen.gen++;
    },
  } satisfies SetKernel & Record<string, unknown>;
  return k;
}

const update = (before: FirewallSpec, after: FirewallSpec): Change<'firewall'> => ({
  kind: 'firewall',
  id: `firewall/inet/${TABLE}`,
  action: 'update',
  before,
  after,
  reason: 'test',
  cause: 'config',
});

describe('a list edit alone: the set changed in place, nothing else', () => {
  const cur = spec();
  const edited = spec({ d4: ['192.0.2.0/24', '198.51.100.8'] });
  let state: MemoryStateStore;
  let kernel: ReturnType<typeof fakeKernel>;
  const setup = (exec: Exec) => {
    const driver = createLinuxFirewallDriver({ exec, kernel });
    const ctx = { exec, reporter: new MemoryReporter(), state, dryRun: exec.dryRun, claims };
    const scope = () => ({ desired: { resources: [], warnings: [] }, claims, state });
    return { driver, ctx, scope };
  };
  beforeEach(() => {
    kernelGen.gen += 1000;
    state = new MemoryStateStore();
    kernel = fakeKernel();
    // the sets were verified at this generation: the apply reads no count
    verifiedStamp.set(state, TABLE, kernel.stamp());
  });

  it('the delta over netlink, no `nft -f`, no read-back; the verify reuses the listing', async () => {
    const nft = new FakeNft(listing());
    const { driver, ctx, scope } = setup(nft);
    const gen = kernelGen.gen;
    expect(await driver.apply(update(cur, edited), ctx)).toBe('changed');
    expect(nft.log).toEqual(['netlink: change nft set inet awg d4_r in place (+1 −1)']);
    expect(kernel.updates).toEqual(['d4_r']);
    expect(nft.reads).toBe(1);
    // one transaction: one generation
    expect(kernelGen.gen).toBe(gen + 1);
    expect(verifiedStamp.get(state, TABLE)).toBe(kernel.stamp());
    expect(readContents(state, TABLE).sets.d4_r?.digest).toMatch(/^[0-9a-f]{32}$/);
    // the verify: the listing read before, at the generation the delta moved it to
    const seen = await driver.observe(scope());
    expect(nft.reads).toBe(1);
    expect(seen.resources[0]!.spec.ruleset).toBe(edited.ruleset);
  });

  it('a foreign rule added between the read and the delta: the verify reads afresh and sees it', async () => {
    const nft = new FakeNft(listing());
    const foreign = listing().replace(
      '\tchain filter_out {\n\t\ttype filter hook output priority filter; policy accept;\n',
      '$&\t\tip daddr 192.0.2.99 accept\n',
    );
    expect(foreign).not.toBe(listing());
    kernel.before = () => {
      nft.listing = foreign;
      kernelGen.gen++;
    };
    const { driver, ctx, scope } = setup(nft);
    const was = verifiedStamp.get(state, TABLE);
    expect(await driver.apply(update(cur, edited), ctx)).toBe('changed');
    expect(nft.log).toEqual(['netlink: change nft set inet awg d4_r in place (+1 −1)']);
    // the generation moved by two for one transaction of ours: nothing is taken as verified
    expect(verifiedStamp.get(state, TABLE)).toBe(was);
    const seen = await driver.observe(scope());
    expect(nft.reads).toBe(2);
    expect(seen.resources[0]!.spec.ruleset).toContain('ip daddr 192.0.2.99 accept');
    expect(seen.resources[0]!.spec.ruleset).not.toBe(edited.ruleset);
  });

  it('a listing shared by the reconcile pass keeps the generation its first reader read', async () => {
    const nft = new FakeNft(listing());
    const exec = new ReadPassExec(nft, [NFT_RULESET_READ]);
    const { driver, ctx, scope } = setup(exec);
    const foreign = listing().replace(
      '\tchain nat_out {\n\t\ttype nat hook output priority -100; policy accept;\n',
      '$&\t\tip daddr 192.0.2.99 accept\n',
    );
    expect(foreign).not.toBe(listing());
    await exec.pass(async () => {
      expect((await driver.observe(scope())).resources[0]!.spec.ruleset).toBe(cur.ruleset);
      // a foreign change after the observation: the apply is handed the pass's listing
      nft.listing = foreign;
      kernelGen.gen++;
      expect(await driver.apply(update(cur, edited), ctx)).toBe('changed');
      expect(nft.reads).toBe(1);
      // the listing was read before the foreign change: not carried, read afresh
      const seen = await driver.observe(scope());
      expect(nft.reads).toBe(2);
      expect(seen.resources[0]!.spec.ruleset).not.toBe(edited.ruleset);
    });
  });

  it('a list edit and a rule change: the delta, then the whole transaction and its read-back', async () => {
    // the kill switch on: other chains, the same sets
    const want = spec({ d4: ['192.0.2.0/24', '198.51.100.8'], killSwitch: 'on' });
    const nft = new FakeNft(listing());
    // the kernel's listing after the load: the edited set's comment still the first content
    const [was, now] = [cur, want].map((s) => /comment "awg n=\d+ sha256=\w+"/.exec(s.ruleset)![0]);
    nft.loads = listing({ d4: ['192.0.2.0/24', '198.51.100.8'], killSwitch: 'on' }).replace(
      now!,
      was!,
    );
    const { driver, ctx } = setup(nft);
    expect(await driver.apply(update(cur, want), ctx)).toBe('changed');
    expect(nft.log.filter((l) => !l.includes('killswitch-boot'))).toEqual([
      'netlink: change nft set inet awg d4_r in place (+1 −1)',
      expect.stringMatching(
        /^nft -f - \(load table inet awg, \d+ lines; set\(s\) kept: d4_r, l4_r\)$/,
      ),
    ]);
    expect(nft.reads).toBe(2);
  });

  it('a dry run records the table replaced, as before, and changes nothing', async () => {
    const nft = new FakeNft(listing(), true);
    const { driver, ctx } = setup(nft);
    const gen = kernelGen.gen;
    expect(await driver.apply(update(cur, edited), ctx)).toBe('changed');
    // no netlink under a dry run: the plan is the classic replace
    expect(nft.log).toEqual([
      expect.stringMatching(/^nft -f - \(replace table inet awg, \d+ lines\)$/),
    ]);
    expect(kernel.updates).toEqual([]);
    expect(kernelGen.gen).toBe(gen);
  });
});

describe('generations', () => {
  it('stampMovedBy: the same namespace, moved by exactly the count', () => {
    expect(stampMovedBy('b/1/7', 'b/1/9', 2)).toBe(true);
    expect(stampMovedBy('b/1/7', 'b/1/9', 1)).toBe(false);
    expect(stampMovedBy('b/1/7', 'b/2/9', 2)).toBe(false);
    expect(stampMovedBy('b/1/7', 'b/1/7', 0)).toBe(true);
    expect(stampMovedBy(undefined, 'b/1/7', 0)).toBe(false);
    expect(stampMovedBy('b/1/7', 'b/1/8', undefined)).toBe(false);
  });

  it('carryListing: only the listing last read, at the generation before, moved by the count', async () => {
    const text = listing();
    kernelGen.gen = 500;
    const read = await readRuleset(new FakeNft(text), TABLE);
    const t = read.table!;
    expect(carryListing(TABLE, parseTableListing(text), 500, 501, 1)).toBe(false);
    expect(carryListing(TABLE, t, 499, 500, 1)).toBe(false);
    expect(carryListing(TABLE, t, 500, 502, 1)).toBe(false);
    expect(carryListing(TABLE, t, 500, 501, undefined)).toBe(false);
    expect(carryListing(TABLE, t, 500, 501, 1)).toBe(true);
    kernelGen.gen = 501;
    const nft = new FakeNft(text);
    expect(await readRuleset(nft, TABLE, { reuse: true })).toBe(read);
    expect(nft.reads).toBe(0);
  });
});
