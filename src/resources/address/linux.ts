/**
 * Linux address driver: addresses on links we own (ownership follows the link, see
 * parse.ts). Changes go through `ip addr add/del` via exec.mutate; IPv6 addresses get
 * `nodad` so they are usable at once (a TUN has no neighbours to collide with).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { AddressSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { canonicalHostCidr, classifyAddresses, type ParsedAddresses } from './parse.js';
import { readLinkRows } from '../link/rows.js';
import { ownershipView } from '../link/linux.js';
import type { StateStore } from '../../util/state.js';

export interface LinuxAddressOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

/** `state`: whose links are ours (link/linux.ts ownershipView); without it, every marked link */
export async function readAddresses(
  exec: Pick<Exec, 'read'>,
  prefix: string,
  state?: StateStore,
): Promise<ParsedAddresses> {
  return classifyAddresses(
    await readLinkRows(exec, true),
    prefix,
    state ? ownershipView(state) : {},
  );
}

export function addrArgs(op: 'add' | 'del', a: AddressSpec): string[] {
  const fam = a.family === 6 ? '-6' : '-4';
  return [
    fam,
    'addr',
    op,
    a.cidr,
    'dev',
    a.link,
    ...(op === 'add' && a.family === 6 ? ['nodad'] : []),
  ];
}

function normalise(a: AddressSpec): AddressSpec {
  const [addr, len] = a.cidr.split('/') as [string, string | undefined];
  let c: { cidr: string; family: 4 | 6 };
  try {
    c = canonicalHostCidr(addr, len === undefined ? (a.family === 6 ? 128 : 32) : Number(len));
  } catch (e) {
    throw new AwgError('bug', `address ${a.cidr} is not an IP address`, { cause: e });
  }
  if (c.family !== a.family) throw new AwgError('bug', `address ${a.cidr} is not IPv${a.family}`);
  return { link: a.link, cidr: c.cidr, family: c.family };
}

export function createLinuxAddressDriver(opts: LinuxAddressOptions): Driver<'address'> {
  return {
    kind: 'address',
    async observe(scope: ObserveScope): Promise<ObserveResult<'address'>> {
      const p = await readAddresses(opts.exec, scope.claims.linkPrefix, scope.state);
      const resources: Resource<'address'>[] = p.owned.map((a) => ({
        kind: 'address',
        id: ids.address(a),
        spec: a,
        deps: [ids.link(a.link)],
      }));
      const foreign: ForeignObject[] = [];
      for (const r of scope.desired.resources) {
        if (r.kind !== 'address') continue;
        const why = p.foreignLinks.get(r.spec.link);
        if (why)
          foreign.push({
            kind: 'address',
            id: r.id,
            relation: 'conflict',
            description: `address ${r.spec.cidr} is wanted on ${r.spec.link}, which is not ours (${why})`,
          });
      }
      return { resources, foreign };
    },

    async apply(change: Change<'address'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const cur = await readAddresses(ctx.exec, ctx.claims.linkPrefix, ctx.state);
      const have = new Set(cur.owned.map((a) => ids.address(a)));

      const remove = async (a: AddressSpec): Promise<boolean> => {
        const n = normalise(a);
        // only on links we own; an address elsewhere is not ours
        if (!cur.ownedLinks.has(n.link) || !have.has(ids.address(n))) return false;
        await ctx.exec.mutate('ip', addrArgs('del', n));
        have.delete(ids.address(n));
        return true;
      };

      if (change.action === 'delete') {
        if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
        return (await remove(change.before)) ? 'changed' : 'unchanged';
      }
      if (!change.after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      const after = normalise(change.after);
      let changed = false;
      if (
        change.action === 'replace' &&
        change.before &&
        ids.address(normalise(change.before)) !== ids.address(after)
      )
        changed = await remove(change.before);
      const why = cur.foreignLinks.get(after.link);
      if (why)
        throw new AwgError(
          'conflict',
          `link ${after.link} is not ours (${why}); not adding ${after.cidr} to it`,
        );
      // under dry-run the link may exist only in the plan
      if (!cur.ownedLinks.has(after.link) && !ctx.dryRun)
        throw new AwgError(
          'driver',
          `link ${after.link} does not exist or is not ours; cannot add ${after.cidr}`,
        );
      if (have.has(ids.address(after))) return changed ? 'changed' : 'unchanged';
      await ctx.exec.mutate('ip', addrArgs('add', after));
      return 'changed';
    },
  };
}
