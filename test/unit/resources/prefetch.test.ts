import { describe, expect, it } from 'vitest';
import { PrefetchExec } from '../../../src/resources/prefetch.js';
import {
  ADDR_READ,
  DEFAULT_NFT_TABLE,
  LINK_READ,
  linuxObserveReads,
  routeRead,
  ruleRead,
  type Read,
} from '../../../src/resources/reads.js';
import { loadPlatform } from '../../../src/resources/registry.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import type { Exec, ExecOptions, ExecResult } from '../../../src/util/exec.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';

/** answers every read with its argv; counts the runs; `fail` exits 1 */
class CountingExec implements Exec {
  readonly runs: string[] = [];
  readonly dryRun = false;
  readonly mutations = 0;
  constructor(private readonly fail = new Set<string>()) {}
  async read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const k = [cmd, ...args].join(' ');
    this.runs.push(k);
    const code = this.fail.has(k) ? 1 : 0;
    if (code && !opts.allowFail) throw new Error(`${k} failed (run ${this.runs.length})`);
    return { stdout: `${k} #${this.runs.length}`, stderr: '', code };
  }
  async mutate(): Promise<ExecResult> {
    throw new Error('no mutations here');
  }
  record(): boolean {
    return true;
  }
}

const r = (cmd: string, ...args: string[]): Read => [cmd, args];

describe('PrefetchExec', () => {
  it('starts the reads at once and hands each result to the first matching read only', async () => {
    const inner = new CountingExec();
    const e = new PrefetchExec(inner, [
      r('ip', 'link'),
      r('nft', 'list', 'tables'),
      r('ip', 'link'),
    ]);
    expect(inner.runs).toEqual(['ip link', 'nft list tables']);
    expect((await e.read('ip', ['link'])).stdout).toBe('ip link #1');
    expect((await e.read('ip', ['link'])).stdout).toBe('ip link #3');
    expect((await e.read('ip', ['addr'])).stdout).toBe('ip addr #4');
  });

  it('a failed prefetch is re-run for a caller that does not allow failure, reused for one that does', async () => {
    const inner = new CountingExec(new Set(['nft list table inet awg']));
    const e = new PrefetchExec(inner, [
      r('nft', 'list', 'table', 'inet', 'awg'),
      r('nft', 'list', 'tables'),
    ]);
    await expect(e.read('nft', ['list', 'table', 'inet', 'awg'])).rejects.toThrow('failed (run 3)');
    const e2 = new PrefetchExec(inner, [r('nft', 'list', 'table', 'inet', 'awg')]);
    expect((await e2.read('nft', ['list', 'table', 'inet', 'awg'], { allowFail: true })).code).toBe(
      1,
    );
    expect(inner.runs).toHaveLength(4);
  });

  it('reads with input are never served from the prefetch', async () => {
    const inner = new CountingExec();
    const e = new PrefetchExec(inner, [r('ip', 'link')]);
    expect((await e.read('ip', ['link'], { input: 'x' })).stdout).toBe('ip link #2');
  });

  it('a prefetch that throws and is never read is not an unhandled rejection', async () => {
    const inner = new CountingExec();
    inner.read = () => Promise.reject(new Error('spawn ENOENT'));
    const e = new PrefetchExec(inner, [r('nft', 'list', 'tables')]);
    await new Promise((res) => setTimeout(res, 5));
    await expect(e.read('nft', ['list', 'tables'])).rejects.toThrow('ENOENT');
  });

  it('one observation of the Linux drivers runs exactly the prefetched reads, each once (and the links, addresses, routes and rules, which a host reads over netlink)', async () => {
    expect(DEFAULT_CLAIMS.nftTable).toBe(DEFAULT_NFT_TABLE);
    const inner = new CountingExec();
    const exec = new PrefetchExec(inner, linuxObserveReads(DEFAULT_NFT_TABLE));
    const prefetched = [...inner.runs];
    const drivers = await (
      await loadPlatform('linux')
    ).drivers({ exec, env: { AWG_UAPI_DIR: '/nonexistent-awg-test' } });
    const scope = {
      desired: { resources: [], warnings: [] },
      claims: DEFAULT_CLAIMS,
      state: new MemoryStateStore(),
    };
    // the canned outputs are not valid ip/nft output: only which commands run matters here
    for (const k of ['link', 'address', 'route', 'rule', 'firewall'] as const)
      await drivers[k]!.observe(scope).catch(() => undefined);
    // this Exec runs nowhere: the link, address, route and rule drivers read by `ip`, which on a
    // host they do not
    const routes = [LINK_READ, ADDR_READ, routeRead(4), routeRead(6), ruleRead(4), ruleRead(6)].map(
      ([cmd, args]) => [cmd, ...args].join(' '),
    );
    expect(inner.runs.sort()).toEqual([...prefetched, ...routes].sort());
  });
});
