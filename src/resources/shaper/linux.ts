/**
 * Linux shaper driver (model/shaping.ts, docs/limits.md): HTB trees on our TUNs and ifbs, and
 * the redirects of a clsact on the devices they shape (render.ts; ownership in parse.ts).
 *
 * observe: the links and the qdiscs (`ip -j -d link show`, `tc -j qdisc show`: read over
 * rtnetlink in this process on this host, link/rows.ts and qdiscs.ts), then by `tc` the
 * filters of every clsact and the classes (and an ifb's filters) of every HTB of ours (none
 * without limits). apply: re-reads the same, then one `tc -batch -` through ctx.exec (every
 * command in the mutation log). Any change of a tree
 * rebuilds it: its redirects and its HTB go, the new ones come. A clsact is added only when
 * the device has none, and deleted only when ours and empty; a clsact or ingress qdisc that is
 * not ours is a conflict, never touched. tc keeps no names, so the class names of the last
 * apply are kept in the state record `shaper-classes` (n → name) for the observed specs.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, Resource, ShaperSpec } from '../../model/resources.js';
import { ifbName, IFB_PREFIX } from '../../model/shaping.js';
import { AwgError, toAwgError } from '../../errors.js';
import { specEqual } from '../../util/canonical.js';
import type { Exec } from '../../util/exec.js';
import type { StateStore } from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult } from '../driver.js';
import { classifyLinks } from '../link/parse.js';
import { readLinkRows } from '../link/rows.js';
import { ownershipView } from '../link/linux.js';
import {
  clsactOf,
  observeShapers,
  parseClassText,
  parseFilterJson,
  rootHtb,
  type LinkView,
  type TcClass,
  type TcFilter,
  type TcSnapshot,
} from './parse.js';
import { readQdiscs } from './qdiscs.js';
import { htbCommands, redirectCommands } from './render.js';

export interface LinuxShaperOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

/** n → the class's name at the last apply */
export const SHAPER_NAMES_KEY = 'shaper-classes';

function namesOf(state: StateStore): Record<string, string> {
  const r = state.get<unknown>(SHAPER_NAMES_KEY);
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** the links in the namespace, ours told apart (link/parse.ts) */
async function readLinkView(
  exec: Pick<Exec, 'read'>,
  prefix: string,
  state: StateStore,
): Promise<LinkView> {
  const rows = await readLinkRows(exec, false);
  const all = rows.flatMap((l) => (l.ifname ? [l.ifname] : []));
  const p = classifyLinks(rows, prefix, ownershipView(state));
  const tuns = new Set<string>();
  const ifbs = new Set<string>();
  for (const l of p.owned) (l.spec.kind === 'ifb' ? ifbs : tuns).add(l.spec.name);
  return { all, tuns, ifbs };
}

/** tc's view of the devices that matter: every qdisc, every clsact's filters, every HTB of ours. */
export async function readTc(exec: Pick<Exec, 'read'>, links: LinkView): Promise<TcSnapshot> {
  const qdiscs = await readQdiscs(exec);
  const filters = new Map<string, TcFilter[]>();
  const classes = new Map<string, TcClass[]>();
  const reads: Promise<void>[] = [];
  const present = new Set(links.all);
  for (const dev of new Set(qdiscs.filter((x) => x.kind === 'clsact').map((x) => x.dev)))
    for (const side of ['egress', 'ingress'] as const)
      reads.push(
        exec
          .read('tc', ['-j', 'filter', 'show', 'dev', dev, side])
          .then((r) => void filters.set(`${dev}/${side}`, parseFilterJson(r.stdout))),
      );
  for (const dev of [...links.tuns, ...links.ifbs]) {
    if (!present.has(dev) || !rootHtb({ qdiscs, classes, filters }, dev)) continue;
    // `-j` is not passed: iproute2 6.1 prints HTB classes as text regardless
    reads.push(
      exec
        .read('tc', ['class', 'show', 'dev', dev])
        .then((r) => void classes.set(dev, parseClassText(r.stdout))),
    );
    if (links.ifbs.has(dev))
      reads.push(
        exec
          .read('tc', ['-j', 'filter', 'show', 'dev', dev])
          .then((r) => void filters.set(`${dev}/root`, parseFilterJson(r.stdout))),
      );
  }
  await Promise.all(reads);
  return { qdiscs, classes, filters };
}

const conflictHint =
  'awg adds a clsact only to a device without one: remove it (tc qdisc del dev DEV clsact) if nothing needs it, or remove the limits';

/**
 * The commands that take down the tree of (device, direction) as it is now: its redirect
 * filters (and the clsact, when ours and nothing else of ours is left on it) and its HTB.
 * `keepClsact`: a rebuild that adds redirects again right after.
 */
function teardownCommands(
  snap: TcSnapshot,
  links: LinkView,
  at: { device: string; direction: 'egress' | 'ingress' },
  keepClsact: boolean,
): string[] {
  const out: string[] = [];
  if (at.direction === 'egress' && links.tuns.has(at.device)) {
    if (rootHtb(snap, at.device)) out.push(`qdisc del dev ${at.device} root`);
    return out;
  }
  const cls = clsactOf(snap, links, at.device);
  for (const p of cls.prefs[at.direction])
    out.push(`filter del dev ${at.device} ${at.direction} pref ${p}`);
  const other = at.direction === 'egress' ? 'ingress' : 'egress';
  if (!keepClsact && cls.exists && cls.ours && cls.prefs[other].length === 0)
    out.push(`qdisc del dev ${at.device} clsact`);
  const ifb = ifbName(at.device, at.direction);
  if (links.ifbs.has(ifb) && rootHtb(snap, ifb)) out.push(`qdisc del dev ${ifb} root`);
  return out;
}

/** The commands that build `spec` on a device whose tree of that direction is gone. */
function buildCommands(spec: ShaperSpec, snap: TcSnapshot, links: LinkView): string[] {
  if (spec.ifb === undefined) {
    // our TUN: replace whatever default qdisc its root has
    const [root, ...rest] = htbCommands(spec);
    return [root!.replace(/^qdisc add /, 'qdisc replace '), ...rest];
  }
  const cls = clsactOf(snap, links, spec.device);
  return [
    ...(cls.exists ? [] : [`qdisc add dev ${spec.device} clsact`]),
    ...htbCommands(spec),
    ...redirectCommands(spec),
  ];
}

async function runBatch(ctx: ApplyContext, lines: string[]): Promise<void> {
  if (!lines.length) return;
  await ctx.exec.mutate('tc', ['-batch', '-'], {
    input: lines.join('\n') + '\n',
    display: `tc -batch - (${lines.join('; ')})`,
  });
}

export function createLinuxShaperDriver(opts: LinuxShaperOptions): Driver<'shaper'> {
  async function current(exec: Pick<Exec, 'read'>, prefix: string, state: StateStore) {
    const links = await readLinkView(exec, prefix, state);
    const snap = await readTc(exec, links);
    return { links, snap };
  }

  return {
    kind: 'shaper',
    async observe(scope): Promise<ObserveResult<'shaper'>> {
      let now: Awaited<ReturnType<typeof current>>;
      try {
        now = await current(opts.exec, scope.claims.linkPrefix, scope.state);
      } catch (e) {
        // a host whose tc cannot be read (no tc, no rights to it) can still run awg without
        // limits; with limits wanted, it is an error like any other kind's
        if (scope.desired.resources.some((r) => r.kind === 'shaper')) throw e;
        return { resources: [], foreign: [] };
      }
      const { links, snap } = now;
      const seen = observeShapers(snap, links, namesOf(scope.state));
      const resources: Resource<'shaper'>[] = seen.specs.map((spec) => ({
        kind: 'shaper',
        id: ids.shaper(spec),
        spec,
        deps: [],
      }));
      const foreign: ForeignObject[] = seen.conflicts.flatMap((c) =>
        (['egress', 'ingress'] as const).map((direction) => ({
          kind: 'shaper' as const,
          id: ids.shaper({ device: c.device, direction }),
          relation: 'conflict' as const,
          description: `${c.reason}; awg will not touch it (${conflictHint})`,
        })),
      );
      return { resources, foreign };
    },

    async apply(change: Change<'shaper'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const { links, snap } = await current(ctx.exec, ctx.claims.linkPrefix, ctx.state);
      const now = observeShapers(snap, links, namesOf(ctx.state));
      const at = (change.after ?? change.before)!;
      const have = now.specs.find((s) => ids.shaper(s) === ids.shaper(at));

      if (change.action === 'delete') {
        if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
        const lines = teardownCommands(snap, links, change.before, false);
        await runBatch(ctx, lines);
        return lines.length ? 'changed' : 'unchanged';
      }
      const after = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      if (after.ifb !== undefined && !after.ifb.startsWith(IFB_PREFIX))
        throw new AwgError('bug', `${change.id}: ifb ${after.ifb} lacks the prefix ${IFB_PREFIX}`);
      const conflict = now.conflicts.find((c) => c.device === after.device);
      if (conflict && after.ifb !== undefined)
        throw new AwgError('conflict', `${change.id}: ${conflict.reason}; not touching it`, {
          hint: conflictHint,
        });
      if (have && specEqual(have, after)) return 'unchanged';
      const renamed = remember(ctx, after);
      // only names differ: they live in the record, not in tc
      if (
        have &&
        specEqual(
          { ...have, classes: have.classes.map(unnamed) },
          { ...after, classes: after.classes.map(unnamed) },
        )
      )
        return renamed ? 'changed' : 'unchanged';
      // the old tree goes whole (also one at another ifb, for a replace), then the new one
      const lines = [
        ...(change.before && ids.shaper(change.before) !== ids.shaper(after)
          ? teardownCommands(snap, links, change.before, false)
          : []),
        ...teardownCommands(snap, links, after, true),
        ...buildCommands(after, snap, links),
      ];
      try {
        await runBatch(ctx, lines);
      } catch (e) {
        // leave no half-built tree: take down whatever of it is there now
        try {
          const again = await current(ctx.exec, ctx.claims.linkPrefix, ctx.state);
          await runBatch(ctx, teardownCommands(again.snap, again.links, after, false));
        } catch {
          /* reported below with the original error */
        }
        throw toAwgError(e, 'driver');
      }
      return 'changed';
    },
  };
}

const unnamed = (c: ShaperSpec['classes'][number]) => ({ ...c, name: '' });

/** keep the names of the classes applied (tc has nowhere to keep them); whether they changed */
function remember(ctx: ApplyContext, spec: ShaperSpec): boolean {
  if (ctx.exec.dryRun) return false;
  const names = namesOf(ctx.state);
  let changed = false;
  for (const c of spec.classes)
    if (names[String(c.n)] !== c.name) {
      names[String(c.n)] = c.name;
      changed = true;
    }
  if (changed) ctx.state.set(SHAPER_NAMES_KEY, names);
  return changed;
}
