/**
 * In-memory cgroup driver with the real contract (see route/fake.ts). Reports inode facts
 * like the Linux driver; a path deleted and created again gets a new inode.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { CgroupSpec } from '../../model/resources.js';
import type { ApplyContext, ApplyResult, ObserveResult, ObserveScope } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';
import type { CgroupFacts, CgroupMount } from './parse.js';

export class FakeCgroupDriver extends FakeDriver<'cgroup'> {
  private nextInode = 100;
  readonly inodes = new Map<string, number>();
  constructor(
    readonly mount: CgroupMount = {
      mountPoint: '/sys/fs/cgroup/unified',
      root: '/',
      nftPrefix: 'unified',
    },
  ) {
    super('cgroup', (c: CgroupSpec) => ids.cgroup(c.path));
  }
  override seed(...specs: CgroupSpec[]): this {
    super.seed(...specs);
    for (const s of specs) this.inodes.set(s.path, this.nextInode++);
    return this;
  }
  override async observe(scope: ObserveScope): Promise<ObserveResult<'cgroup'>> {
    const r = await super.observe(scope);
    const facts: CgroupFacts = {
      mount: this.mount,
      inodes: Object.fromEntries([...this.inodes].filter(([p]) => this.objects.has(ids.cgroup(p)))),
    };
    return { ...r, facts: { ...r.facts, cgroup: facts } };
  }
  protected override applyOne(change: Change<'cgroup'>, ctx: ApplyContext): ApplyResult {
    const res = super.applyOne(change, ctx);
    for (const s of [change.before, change.after]) {
      if (!s) continue;
      if (!this.objects.has(ids.cgroup(s.path))) this.inodes.delete(s.path);
      else if (!this.inodes.has(s.path)) this.inodes.set(s.path, this.nextInode++);
    }
    return res;
  }
}
