/**
 * The engine driver as the reconciler sees it: one Driver<'engine'> over the three hosts a
 * WireGuard/AmneziaWG tunnel may have (`engine:`), each with the same contract:
 * - embedded: our engine (and the proxy tunnels): detached `awg engine` processes for a
 *   one-shot `awg apply` (process-host.ts), in the daemon's process otherwise (inproc.ts);
 * - kernel: Linux's WireGuard module over generic netlink (kernel-host.ts);
 * - external: a UAPI program awg starts and watches (external-host.ts).
 * Observation merges the three (each reports only the records of its kind). A change goes to
 * the host of its spec; a replace from one host to another stops the old engine through its
 * host before the new one starts, and a record another host left for the tunnel (its engine
 * dead or silent, so not observed) is cleared through that host first, so no two engines
 * ever serve one link.
 */
import { createHalf, deleteHalf, type Change } from '../../model/change.js';
import { engineKindOf, type EngineKind } from '../../model/resources.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { engineKey, type EngineRecord } from './process-host.js';

export type EngineHosts = Record<EngineKind, Driver<'engine'>>;

export function engineDriver(hosts: EngineHosts): Driver<'engine'> {
  const kinds = Object.keys(hosts) as EngineKind[];
  return {
    kind: 'engine',
    async observe(scope: ObserveScope): Promise<ObserveResult<'engine'>> {
      const all = await Promise.all(kinds.map((k) => hosts[k].observe(scope)));
      return {
        resources: all.flatMap((r) => r.resources),
        foreign: all.flatMap((r) => r.foreign),
        ...(all.some((r) => r.facts)
          ? {
              facts: Object.assign({}, ...all.map((r) => r.facts ?? {})) as Record<string, unknown>,
            }
          : {}),
      };
    },
    async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
      const from = change.before && engineKindOf(change.before);
      const to = change.after && engineKindOf(change.after);
      if (change.action === 'noop') return 'unchanged';
      if (!to) return hosts[from!].apply(change, ctx);
      let changed = false;
      const rec = ctx.state.get<EngineRecord>(engineKey(change.after!.tunnel));
      const left = rec && engineKindOf(rec.spec);
      if (left && left !== to && left !== from) {
        const r = await hosts[left].apply(
          {
            kind: 'engine',
            id: change.id,
            action: 'delete',
            before: rec.spec,
            reason: `its ${left} engine is left over`,
            cause: change.cause,
          },
          ctx,
        );
        changed = r === 'changed';
      }
      if (from && from !== to) {
        await hosts[from].apply(deleteHalf(change), ctx);
        await hosts[to].apply(createHalf(change), ctx);
        return 'changed';
      }
      const r = await hosts[to].apply(change, ctx);
      return changed ? 'changed' : r;
    },
  };
}
