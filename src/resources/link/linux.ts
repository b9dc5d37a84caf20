/**
 * Linux link driver: persistent TUN devices `awg-<tunnel>` (and the ifbs `awgq-…` of limits,
 * made with `ip link add … type ifb`) marked with the alias `awg:managed` (see parse.ts for
 * ownership).
 *
 * Create happens in-process: TUNSETIFF (exclusive, IFF_NO_PI) + TUNSETOWNER + TUNSETPERSIST
 * through koffi, then one RTM_NEWLINK that sets the marker alias, MTU and admin state, so
 * the window in which the device exists without its marker is a few syscalls long. Both
 * steps are reported through `exec.record` (logged, counted, skipped under dry-run). If the
 * second step fails the device is removed again. Update and delete use `ip link` through
 * `exec.mutate`; `ip link del` works even while an engine holds the TUN open.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, LinkSpec, Resource } from '../../model/resources.js';
import { AwgError, toAwgError } from '../../errors.js';
import { quoteArg, type Exec } from '../../util/exec.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import type { NetlinkSocket } from '../../native/netlink.js';
import { IFB_PREFIX } from '../../model/shaping.js';
import { readLinkRows } from './rows.js';
import {
  classifyLinks,
  linkAlias,
  type LinkDetails,
  type OwnershipView,
  type ParsedLinks,
} from './parse.js';
import { currentBootId } from '../engine/process-identity.js';
import { ownerTagOf } from '../owner-lock.js';
import { checkedRecord, type StateStore } from '../../util/state.js';
import { isObject } from '../../util/shape.js';

export interface LinuxLinkOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
  /**
   * Network namespace (name or path) for the in-process steps (TUN ioctls, netlink). It must
   * be the namespace `exec` runs its commands in; default: the current one.
   */
  netns?: string;
  /** TUNSETOWNER uid; always set, an ownerless persistent TUN can be attached by anyone */
  owner?: number;
}

/**
 * Our links seen with `state`'s eyes (parse.ts linkOwnership): links tagged for another owner
 * are conflicts, links our state says were being made (makingLinks) are ours without an alias.
 * Without a state: every marked link is ours.
 */
export async function readLinks(
  exec: Pick<Exec, 'read'>,
  prefix: string,
  state?: StateStore,
): Promise<ParsedLinks> {
  return classifyLinks(await readLinkRows(exec, false), prefix, state ? ownershipView(state) : {});
}

/** what the drivers of links, addresses and shapers need to tell our links apart */
export function ownershipView(state: StateStore): OwnershipView {
  return { pending: makingLinks.get(state), mine: ownerTagOf(state) };
}

/**
 * The links being made: a link exists (TUNSETIFF, RTM_NEWLINK) before its marker alias is
 * set by a second call, so a process killed in between leaves a link that would be a conflict
 * forever. The name goes into this record before the link is made and out once it is marked
 * (or removed); a link named here without any alias is ours to mark or remove. Kept per boot:
 * after a reboot no link of ours is left to finish.
 */
const MAKING_KEY = 'links-making';
interface Making {
  bootId: string;
  names: string[];
}

export const makingLinks = {
  get(state: StateStore): Set<string> {
    const r = checkedRecord(
      state,
      MAKING_KEY,
      (x): x is Making =>
        isObject(x) &&
        typeof x.bootId === 'string' &&
        Array.isArray(x.names) &&
        x.names.every((n) => typeof n === 'string'),
      'the link driver',
    );
    return new Set(r && r.bootId === (currentBootId() ?? '') ? r.names : []);
  },
  set(state: StateStore, names: Set<string>): void {
    if (names.size === 0) state.delete(MAKING_KEY);
    else state.set(MAKING_KEY, { bootId: currentBootId() ?? '', names: [...names].sort() });
  },
  add(state: StateStore, name: string): void {
    const s = this.get(state);
    if (s.has(name)) return;
    this.set(state, s.add(name));
  },
  remove(state: StateStore, name: string): void {
    const s = this.get(state);
    if (s.delete(name)) this.set(state, s);
  },
};

/**
 * The koffi bindings (TUN ioctls, netlink) are needed only to change links: loading them on
 * the first apply keeps them (and koffi's native library) off the observe-only paths
 * (`awg diff`, `awg status`).
 */
async function native() {
  const [tun, netlink, wg] = await Promise.all([
    import('../../native/tun.js'),
    import('../../native/netlink.js'),
    import('../../native/wg-kernel.js'),
  ]);
  return { ...tun, ...netlink, createWireguardLink: wg.createWireguardLink };
}
type Native = Awaited<ReturnType<typeof native>>;

/** what RTM_NEWLINK of an unknown link kind answers (the module is missing) */
const EOPNOTSUPP = 95;
const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;

/** Links up with carrier in this network namespace (a TUN has carrier while an engine holds it). */
export async function upLinks(): Promise<Set<string>> {
  const { NetlinkSocket, dumpLinks } = await native();
  const sock = NetlinkSocket.open();
  try {
    return new Set(
      dumpLinks(sock)
        .filter((l) => (l.flags & IFF_UP) !== 0 && (l.flags & IFF_LOWER_UP) !== 0)
        .map((l) => l.ifname ?? ''),
    );
  } finally {
    sock.close();
  }
}

function checkName(name: string, prefix: string, validIfName: Native['validIfName']): void {
  if (!name.startsWith(prefix))
    throw new AwgError('bug', `link ${name} does not carry the claimed prefix ${prefix}`);
  if (!validIfName(name))
    throw new AwgError(
      'invalid-config',
      `link name ${JSON.stringify(name)} is not a valid Linux interface name (1–15 bytes, no '/', ':' or spaces)`,
    );
}

export function createLinuxLinkDriver(opts: LinuxLinkOptions): Driver<'link'> {
  const owner = opts.owner ?? 0;

  /** the link as such: a persistent TUN, a wireguard link of the kernel's module, an ifb */
  async function make(spec: LinkSpec, ctx: ApplyContext, n: Native): Promise<void> {
    if (spec.kind === 'ifb') {
      await ctx.exec.mutate('ip', ['link', 'add', spec.name, 'type', 'ifb']);
      return;
    }
    if (spec.kind === 'wireguard') {
      if (!ctx.exec.record(`[netlink] ip link add ${spec.name} type wireguard`)) return;
      try {
        n.createWireguardLink(spec.name, { ...(opts.netns ? { netns: opts.netns } : {}) });
      } catch (e) {
        // prepare probes the module first (facts); this is the backstop
        if ((e as { errno?: number }).errno === EOPNOTSUPP)
          throw new AwgError(
            'unsupported',
            `link ${spec.name}: this kernel has no WireGuard module (ip link add … type wireguard: Operation not supported)`,
            { hint: 'modprobe wireguard, or engine: embedded', cause: e },
          );
        throw toAwgError(e, 'driver');
      }
      return;
    }
    if (ctx.exec.record(`[ioctl] create persistent tun ${spec.name} (no_pi, owner ${owner})`)) {
      try {
        n.createPersistentTun(spec.name, { netns: opts.netns, owner });
      } catch (e) {
        throw toAwgError(e, 'driver');
      }
    }
  }

  /** removes a link `make` left without its marker (a persistent TUN, or any other kind) */
  function unmake(spec: LinkSpec, n: Native): void {
    if (spec.kind === 'tun') {
      n.deletePersistentTun(spec.name, { netns: opts.netns });
      return;
    }
    const sock = n.NetlinkSocket.open({ netns: opts.netns });
    try {
      n.deleteLink(sock, spec.name);
    } finally {
      sock.close();
    }
  }

  async function create(spec: LinkSpec, ctx: ApplyContext, n: Native): Promise<void> {
    if (!ctx.exec.dryRun) makingLinks.add(ctx.state, spec.name);
    await make(spec, ctx, n);
    await mark(spec, ctx, n);
  }

  /** the marker alias, MTU and admin state of a link we made; removed again when that fails */
  async function mark(spec: LinkSpec, ctx: ApplyContext, n: Native): Promise<void> {
    const { NetlinkSocket, setLink } = n;
    const alias = linkAlias(ownerTagOf(ctx.state));
    if (
      !ctx.exec.record(
        `[netlink] ip link set dev ${spec.name} alias ${quoteArg(alias)} mtu ${spec.mtu} ${spec.up ? 'up' : 'down'}`,
      )
    )
      return;
    let sock: NetlinkSocket | undefined;
    try {
      sock = NetlinkSocket.open({ netns: opts.netns });
      setLink(sock, { name: spec.name, alias, mtu: spec.mtu, up: spec.up });
      makingLinks.remove(ctx.state, spec.name);
    } catch (e) {
      // leave nothing half-made: an unmarked awg- link would be a conflict forever
      try {
        unmake(spec, n);
        makingLinks.remove(ctx.state, spec.name);
      } catch {
        /* reported below with the original error; the record keeps it ours */
      }
      throw new AwgError(
        'driver',
        `configuring new link ${spec.name} failed; removed it again: ${toAwgError(e).message}`,
        { cause: e },
      );
    } finally {
      sock?.close();
    }
  }

  return {
    kind: 'link',
    async observe(scope: ObserveScope): Promise<ObserveResult<'link'>> {
      const p = await readLinks(opts.exec, scope.claims.linkPrefix, scope.state);
      const resources: Resource<'link'>[] = p.owned.map((l) => ({
        kind: 'link',
        id: ids.link(l.spec.name),
        spec: l.spec,
        deps: [],
      }));
      const foreign: ForeignObject[] = p.conflicts.map((c) => ({
        kind: 'link',
        id: ids.link(c.name),
        relation: 'conflict',
        description: `link ${c.name} has our name prefix but is not ours (${c.reason}); awg will not touch it`,
        ...(c.owner ? { owner: c.owner } : {}),
      }));
      const details: Record<string, LinkDetails> = {};
      for (const l of p.owned) details[l.spec.name] = l.details;
      return { resources, foreign, facts: { 'link.details': details } };
    },

    async apply(change: Change<'link'>, ctx: ApplyContext): Promise<ApplyResult> {
      const prefix = ctx.claims.linkPrefix;
      if (change.action === 'noop') return 'unchanged';
      const cur = await readLinks(ctx.exec, prefix, ctx.state);
      const owned = new Map(cur.owned.map((l) => [l.spec.name, l.spec]));
      const unmarked = new Set(cur.owned.filter((l) => l.details.unmarked).map((l) => l.spec.name));
      const conflicts = new Map(cur.conflicts.map((c) => [c.name, c]));

      const remove = async (name: string): Promise<boolean> => {
        // only ever a marked link; a foreign one with the same name is not ours to delete
        if (!owned.has(name)) return false;
        await ctx.exec.mutate('ip', ['link', 'del', 'dev', name]);
        owned.delete(name);
        if (!ctx.exec.dryRun) makingLinks.remove(ctx.state, name);
        return true;
      };

      if (change.action === 'delete') {
        if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
        return (await remove(change.before.name)) ? 'changed' : 'unchanged';
      }
      const after = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      if (after.kind !== 'tun' && after.kind !== 'wireguard' && after.kind !== 'ifb')
        throw new AwgError(
          'unsupported',
          `link kind ${String(after.kind)} is not supported on Linux`,
        );
      const n = await native();
      checkName(after.name, after.kind === 'ifb' ? IFB_PREFIX : prefix, n.validIfName);
      let changed = false;
      if (change.action === 'replace' && change.before && change.before.name !== after.name)
        changed = await remove(change.before.name);
      // another kind (a TUN ↔ a wireguard link: the engine moved to or from the kernel)
      if (owned.get(after.name) && owned.get(after.name)!.kind !== after.kind)
        changed = (await remove(after.name)) || changed;
      const foreign = conflicts.get(after.name);
      if (foreign)
        throw new AwgError(
          'conflict',
          `link ${after.name} exists but is not ours (${foreign.reason}); not touching it`,
          { hint: `remove it or rename the tunnel` },
        );
      const have = owned.get(after.name);
      if (!have) {
        await create(after, ctx, n);
        return 'changed';
      }
      // made by a process that was killed before it could mark it: finish the job
      if (unmarked.has(after.name)) {
        await mark(after, ctx, n);
        return 'changed';
      }
      const args: string[] = [];
      if (have.mtu !== after.mtu) args.push('mtu', String(after.mtu));
      if (have.up !== after.up) args.push(after.up ? 'up' : 'down');
      if (args.length === 0) return changed ? 'changed' : 'unchanged';
      await ctx.exec.mutate('ip', ['link', 'set', 'dev', after.name, ...args]);
      return 'changed';
    },
  };
}
