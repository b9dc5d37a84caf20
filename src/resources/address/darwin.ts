/**
 * macOS address driver: IPv4/IPv6 addresses on the utuns awg's engines hold (ownership via
 * the utun registry; see link/darwin.ts). Kernel-assigned IPv6 link-local addresses are
 * not ours and are ignored.
 *
 * utun is point-to-point: IPv4 is set as `inet A A netmask M alias` (peer = self, the
 * wg-quick convention). The netmask is always explicit because ifconfig otherwise applies
 * the classful mask (10.x → /8, seen in ifconfig-utun5-classful-mask-zrok.txt).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { AddressSpec, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  parseIfconfig,
  parseIfconfigError,
  prefixToHexMask,
  type IfconfigInterface,
} from '../../platform/darwin/ifconfig.js';
import { readUtunRegistry } from '../../platform/darwin/utun.js';
import { privilegeKind } from '../../platform/darwin/privilege.js';

export interface DarwinAddressOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

export function addressesOf(link: string, i: IfconfigInterface): AddressSpec[] {
  return [
    ...i.inet.map((a): AddressSpec => ({ link, cidr: `${a.address}/${a.prefixlen}`, family: 4 })),
    ...i.inet6
      .filter((a) => !a.zone && !a.address.toLowerCase().startsWith('fe80:'))
      .map((a): AddressSpec => ({ link, cidr: `${a.address}/${a.prefixlen}`, family: 6 })),
  ];
}

export function ifconfigAddressArgs(
  ifname: string,
  a: AddressSpec,
  op: 'add' | 'delete',
): string[] {
  const [addr, len] = a.cidr.split('/') as [string, string];
  if (a.family === 4)
    return op === 'add'
      ? [ifname, 'inet', addr, addr, 'netmask', prefixToHexMask(Number(len)), 'alias']
      : [ifname, 'inet', addr, '-alias'];
  return op === 'add'
    ? [ifname, 'inet6', addr, 'prefixlen', len, 'alias']
    : [ifname, 'inet6', addr, '-alias'];
}

async function interfaces(exec: Pick<Exec, 'read'>): Promise<Map<string, IfconfigInterface>> {
  return new Map(parseIfconfig((await exec.read('ifconfig', [])).stdout).map((i) => [i.name, i]));
}

export function createDarwinAddressDriver(opts: DarwinAddressOptions): Driver<'address'> {
  return {
    kind: 'address',
    async observe(scope: ObserveScope): Promise<ObserveResult<'address'>> {
      const ifs = await interfaces(opts.exec);
      const resources: Resource<'address'>[] = [];
      for (const [link, owner] of Object.entries(readUtunRegistry(scope.state))) {
        const i = ifs.get(owner.ifname);
        if (i)
          for (const a of addressesOf(link, i))
            resources.push({
              kind: 'address',
              id: ids.address(a),
              spec: a,
              deps: [ids.link(link)],
            });
      }
      return { resources, foreign: [] };
    },

    async apply(change: Change<'address'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const reg = readUtunRegistry(ctx.state);
      const ifs = await interfaces(ctx.exec);
      const run = async (spec: AddressSpec, op: 'add' | 'delete'): Promise<boolean> => {
        const ifname = reg[spec.link]?.ifname;
        const i = ifname ? ifs.get(ifname) : undefined;
        if (!ifname || !i) {
          if (op === 'add')
            ctx.reporter.report({
              type: 'info',
              message: `${spec.cidr} on ${spec.link}: waiting for the engine to create the utun`,
            });
          return false;
        }
        const present = addressesOf(spec.link, i).some((a) => a.cidr === spec.cidr);
        if (present === (op === 'add')) return false;
        const args = ifconfigAddressArgs(ifname, spec, op);
        const r = await ctx.exec.mutate('ifconfig', args, { allowFail: true });
        if (!ctx.dryRun && r.code !== 0) {
          const e = parseIfconfigError(r.stderr);
          throw new AwgError(
            privilegeKind(r.stderr),
            `ifconfig ${args.join(' ')}: ${e?.message ?? r.stderr.trim()}`,
          );
        }
        return true;
      };
      let changed = false;
      if (change.before && (change.action === 'delete' || change.action === 'replace'))
        changed = (await run(change.before, 'delete')) || changed;
      if (change.after && change.action !== 'delete')
        changed = (await run(change.after, 'add')) || changed;
      return changed ? 'changed' : 'unchanged';
    },
  };
}
