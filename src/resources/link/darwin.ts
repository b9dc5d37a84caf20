/**
 * macOS link driver: observes the utun interfaces awg's engines hold.
 *
 * A utun is created inside the engine process (PF_SYSTEM control socket, CTLIOCGINFO for
 * `com.apple.net.utun_control`, connect with unit N+1; see platform/darwin/utun.ts) and
 * lives exactly as long as that socket. It has no alias field to carry a marker, so the
 * engine records `link → utunN` in the StateStore registry; only registered utuns are ours.
 * This driver therefore never creates or destroys a utun: create/update set MTU and
 * up/down on the registered utun (`ifconfig`), create before the engine has run is a no-op
 * reported as info, and delete waits for the engine to have closed the device.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { LinkSpec, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { StateStore } from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  parseIfconfig,
  parseIfconfigError,
  type IfconfigInterface,
} from '../../platform/darwin/ifconfig.js';
import { forgetUtun, readUtunRegistry } from '../../platform/darwin/utun.js';
import { privilegeKind } from '../../platform/darwin/privilege.js';

export interface DarwinLinkOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

async function interfaces(exec: Pick<Exec, 'read'>): Promise<Map<string, IfconfigInterface>> {
  return new Map(parseIfconfig((await exec.read('ifconfig', [])).stdout).map((i) => [i.name, i]));
}

/**
 * Our links whose utun exists and is up now (the registry names it; the utun lives exactly as
 * long as its engine's socket), by their link names (`awg-work`).
 */
export async function upUtunLinks(
  state: StateStore,
  exec: Pick<Exec, 'read'>,
): Promise<Set<string>> {
  const ifs = await interfaces(exec);
  return new Set(
    Object.entries(readUtunRegistry(state)).flatMap(([link, o]) =>
      ifs.get(o.ifname)?.up ? [link] : [],
    ),
  );
}

/** The host's own addresses (`ifconfig`), our utuns' left out (zones stripped; loopback and link-local kept: the caller filters). */
export async function localAddresses(
  state: StateStore,
  exec: Pick<Exec, 'read'>,
): Promise<string[]> {
  const ours = new Set(Object.values(readUtunRegistry(state)).map((o) => o.ifname));
  const out: string[] = [];
  for (const i of (await interfaces(exec)).values()) {
    if (ours.has(i.name)) continue;
    for (const a of [...i.inet, ...i.inet6]) out.push(a.address.replace(/%.*$/, ''));
  }
  return [...new Set(out)].sort();
}

async function ifconfig(ctx: ApplyContext, args: string[]): Promise<void> {
  const r = await ctx.exec.mutate('ifconfig', args, { allowFail: true });
  if (ctx.dryRun || r.code === 0) return;
  const e = parseIfconfigError(r.stderr);
  throw new AwgError(
    privilegeKind(r.stderr),
    `ifconfig ${args.join(' ')}: ${e ? (e.op ? `${e.op}: ${e.message}` : e.message) : r.stderr.trim()}`,
  );
}

export function createDarwinLinkDriver(opts: DarwinLinkOptions): Driver<'link'> {
  return {
    kind: 'link',
    async observe(scope: ObserveScope): Promise<ObserveResult<'link'>> {
      const reg = readUtunRegistry(scope.state);
      const ifs = await interfaces(opts.exec);
      const resources: Resource<'link'>[] = [];
      const stale: string[] = [];
      for (const [name, owner] of Object.entries(reg).sort(([a], [b]) => a.localeCompare(b))) {
        const i = ifs.get(owner.ifname);
        if (!i) {
          stale.push(`${name}=${owner.ifname}`);
          continue;
        }
        resources.push({
          kind: 'link',
          id: ids.link(name),
          spec: { name, kind: 'tun', mtu: i.mtu, up: i.up },
          deps: [],
        });
      }
      const facts: Record<string, unknown> = {
        utun: Object.fromEntries(Object.entries(reg).map(([k, v]) => [k, v.ifname])),
      };
      if (stale.length) facts['staleUtun'] = stale;
      return { resources, foreign: [], facts };
    },

    async apply(change: Change<'link'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const reg = readUtunRegistry(ctx.state);
      const ifs = await interfaces(ctx.exec);
      if (change.action === 'delete') {
        const name = change.before?.name;
        if (!name) throw new AwgError('bug', `delete ${change.id} without before`);
        const owner = reg[name];
        if (owner && ifs.has(owner.ifname)) {
          // a utun cannot be destroyed from outside (SIOCIFDESTROY: Invalid argument); it goes
          // when its engine stops, which realiseDarwin orders after this delete. Should the
          // engine stay, verification reports the link still there.
          ctx.reporter.report({
            type: 'info',
            message: `${name}: ${owner.ifname} goes when its engine${owner.pid ? ` (pid ${owner.pid})` : ''} stops`,
          });
          return 'unchanged';
        }
        if (owner && !ctx.dryRun) forgetUtun(ctx.state, name);
        return 'unchanged';
      }
      const after: LinkSpec | undefined = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      const owner = reg[after.name];
      const i = owner && ifs.get(owner.ifname);
      if (!owner || !i) {
        ctx.reporter.report({
          type: 'info',
          message: `${after.name}: the utun is created by the tunnel engine when it starts; nothing to do yet`,
        });
        return 'unchanged';
      }
      let changed = false;
      if (i.mtu !== after.mtu) {
        await ifconfig(ctx, [owner.ifname, 'mtu', String(after.mtu)]);
        changed = true;
      }
      if (i.up !== after.up) {
        await ifconfig(ctx, [owner.ifname, after.up ? 'up' : 'down']);
        changed = true;
      }
      return changed ? 'changed' : 'unchanged';
    },
  };
}
