import { describe, expect, it } from 'vitest';
import { ReadPassExec } from '../../../src/resources/read-pass.js';
import { runsOnHost } from '../../../src/resources/prefetch.js';
import {
  ADDR_READ,
  LINK_READ,
  NFT_RULESET_READ,
  TC_QDISC_READ,
  linuxListings,
} from '../../../src/resources/reads.js';
import {
  ProcessExec,
  type Exec,
  type ExecOptions,
  type ExecResult,
} from '../../../src/util/exec.js';
import { silentReporter } from '../../../src/util/reporter.js';

/** answers every read with its argv and run number; counts runs; `fail` exits 1 */
class CountingExec implements Exec {
  readonly runs: string[] = [];
  readonly records: string[] = [];
  readonly dryRun = false;
  mutations = 0;
  /** runs between a mutation's start and its end see this */
  hold: Promise<void> | undefined;
  constructor(readonly fail = new Set<string>()) {}
  async read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const k = [cmd, ...args].join(' ');
    this.runs.push(k);
    const n = this.runs.length;
    const code = this.fail.has(k) ? 1 : 0;
    if (code && !opts.allowFail) throw new Error(`${k} failed (run ${n})`);
    return { stdout: `${k} #${n}`, stderr: '', code };
  }
  async mutate(cmd: string, args: string[]): Promise<ExecResult> {
    this.mutations++;
    this.runs.push(`! ${[cmd, ...args].join(' ')}`);
    await this.hold;
    return { stdout: '', stderr: '', code: 0 };
  }
  record(display: string): boolean {
    this.records.push(display);
    return true;
  }
}

const [nft, nftArgs] = [NFT_RULESET_READ[0], [...NFT_RULESET_READ[1]]];
const [tc, tcArgs] = [TC_QDISC_READ[0], [...TC_QDISC_READ[1]]];
const [ip, linkArgs] = [LINK_READ[0], [...LINK_READ[1]]];
const addrArgs = [...ADDR_READ[1]];

function setup(fail?: Set<string>) {
  const inner = new CountingExec(fail);
  return { inner, e: new ReadPassExec(inner, linuxListings()) };
}
const out = async (p: Promise<ExecResult>) => (await p).stdout;

describe('ReadPassExec: one run of each listing per pass', () => {
  it('outside a pass every read runs', async () => {
    const { inner, e } = setup();
    await e.read(nft, nftArgs);
    await e.read(nft, nftArgs);
    expect(inner.runs).toHaveLength(2);
    expect(e.open).toBe(false);
  });

  it('in a pass a listed read runs once for every caller, concurrent ones too; unlisted reads, reads with input or an environment run each time', async () => {
    const { inner, e } = setup();
    await e.pass(async () => {
      const [a, b] = await Promise.all([out(e.read(nft, nftArgs)), out(e.read(nft, nftArgs))]);
      expect(a).toBe(b);
      expect(await out(e.read(tc, tcArgs))).toBe(await out(e.read(tc, tcArgs)));
      expect(await out(e.read(ip, linkArgs))).toBe(await out(e.read(ip, linkArgs)));
      await e.read('tc', ['-j', 'filter', 'show', 'dev', 'x']);
      await e.read('tc', ['-j', 'filter', 'show', 'dev', 'x']);
      await e.read(nft, nftArgs, { input: '' });
      await e.read(nft, nftArgs, { env: { A: '1' } });
    });
    expect(inner.runs.filter((r) => r === 'nft -t list ruleset')).toHaveLength(3);
    expect(inner.runs.filter((r) => r.startsWith('tc -j qdisc'))).toHaveLength(1);
    expect(inner.runs.filter((r) => r.startsWith('tc -j filter'))).toHaveLength(2);
    expect(inner.runs.filter((r) => r.startsWith('ip '))).toHaveLength(1);
  });

  it('the end of the pass forgets every listing, also when it throws', async () => {
    const { inner, e } = setup();
    await e.pass(async () => void (await e.read(nft, nftArgs)));
    await expect(
      e.pass(async () => {
        await e.read(nft, nftArgs);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await e.pass(async () => void (await e.read(nft, nftArgs)));
    expect(inner.runs).toEqual([
      'nft -t list ruleset',
      'nft -t list ruleset',
      'nft -t list ruleset',
    ]);
  });

  it('renew forgets every listing and keeps the pass open (a verification retry looks again)', async () => {
    const { inner, e } = setup();
    await e.pass(async () => {
      const n1 = await out(e.read(nft, nftArgs));
      e.renew();
      expect(e.open).toBe(true);
      const n2 = await out(e.read(nft, nftArgs));
      expect(n2).not.toBe(n1);
      expect(await out(e.read(nft, nftArgs))).toBe(n2);
    });
    expect(inner.runs).toHaveLength(2);
  });

  it('passes nest: the inner one ending keeps the outer one’s listings', async () => {
    const { inner, e } = setup();
    await e.pass(async () => {
      await e.read(tc, tcArgs);
      await e.pass(async () => void (await e.read(tc, tcArgs)));
      expect(e.open).toBe(true);
      await e.read(tc, tcArgs);
    });
    expect(inner.runs).toHaveLength(1);
  });

  it('an nft mutation forgets the nft listing only; any other mutation forgets all', async () => {
    const { inner, e } = setup();
    await e.pass(async () => {
      const n1 = await out(e.read(nft, nftArgs));
      const t1 = await out(e.read(tc, tcArgs));
      const l1 = await out(e.read(ip, addrArgs));
      await e.mutate('nft', ['-f', '-'], { input: 'x' });
      expect(await out(e.read(nft, nftArgs))).not.toBe(n1);
      expect(await out(e.read(tc, tcArgs))).toBe(t1);
      expect(await out(e.read(ip, addrArgs))).toBe(l1);
      await e.mutate('ip', ['link', 'del', 'awg-x']);
      expect(await out(e.read(tc, tcArgs))).not.toBe(t1);
      expect(await out(e.read(ip, addrArgs))).not.toBe(l1);
    });
    expect(inner.mutations).toBe(2);
    expect(e.mutations).toBe(2);
  });

  it('a tc mutation forgets the links too (ip -d link prints each link’s qdisc)', async () => {
    const { e } = setup();
    await e.pass(async () => {
      const l1 = await out(e.read(ip, linkArgs));
      await e.mutate('tc', ['qdisc', 'add', 'dev', 'x', 'clsact']);
      expect(await out(e.read(ip, linkArgs))).not.toBe(l1);
    });
  });

  it('records: nft-only forgets nft, files-only forgets nothing, others forget all; each is passed on', async () => {
    const { inner, e } = setup();
    await e.pass(async () => {
      const n1 = await out(e.read(nft, nftArgs));
      const t1 = await out(e.read(tc, tcArgs));
      expect(e.record('write boot copy', { touches: 'files' })).toBe(true);
      expect(await out(e.read(nft, nftArgs))).toBe(n1);
      e.record('netlink: change nft set', { touches: 'nft' });
      const n2 = await out(e.read(nft, nftArgs));
      expect(n2).not.toBe(n1);
      expect(await out(e.read(tc, tcArgs))).toBe(t1);
      e.record('[ioctl] create persistent tun');
      expect(await out(e.read(nft, nftArgs))).not.toBe(n2);
      expect(await out(e.read(tc, tcArgs))).not.toBe(t1);
    });
    expect(inner.records).toEqual([
      'write boot copy',
      'netlink: change nft set',
      '[ioctl] create persistent tun',
    ]);
  });

  it('a read that starts while a mutation runs is not kept past it', async () => {
    const { inner, e } = setup();
    let release!: () => void;
    inner.hold = new Promise((r) => (release = r));
    await e.pass(async () => {
      const m = e.mutate('nft', ['-f', '-']);
      const during = await out(e.read(nft, nftArgs));
      release();
      await m;
      expect(await out(e.read(nft, nftArgs))).not.toBe(during);
    });
  });

  it('a failed run is not kept: a caller allowing failure sees it, one that does not gets a run of its own', async () => {
    const { inner, e } = setup(new Set(['nft -t list ruleset']));
    await e.pass(async () => {
      expect((await e.read(nft, nftArgs, { allowFail: true })).code).toBe(1);
      await expect(e.read(nft, nftArgs)).rejects.toThrow('failed (run 3)');
      inner.fail.clear();
      const ok = await out(e.read(nft, nftArgs));
      expect(await out(e.read(nft, nftArgs))).toBe(ok);
    });
    expect(inner.runs).toHaveLength(4);
  });

  it('runs on this host when its inner Exec does', () => {
    expect(runsOnHost(new ReadPassExec(new CountingExec(), []))).toBe(false);
    expect(runsOnHost(new ReadPassExec(new ProcessExec(silentReporter), []))).toBe(true);
  });
});
