/**
 * The DNS driver's systemd-resolved half: per-link servers, domains and default-route on our
 * links (names with the claims' link prefix), never on another link and never globally.
 *
 * - Through resolved's D-Bus API with `busctl` (resolved-bus.ts); `resolvectl` where busctl is
 *   missing. Settings are runtime ones: resolved drops them with the link, and `down` reverts
 *   them first (RevertLink), so resolved is left as it was. Resolved is never restarted.
 * - DNSSEC, DNSOverTLS, LLMNR and mDNS are never set per link: the user's global settings apply.
 * - Writes go default-route, domains, then servers: a link has no servers until its routing
 *   is in place (resolved routes nothing to a link without servers), so a tunnel that must not
 *   be a default route never is one, not even between two calls.
 * - Unreachable resolved (not running, or no system bus: at shutdown awg.service may stop after
 *   dbus): a delete is done with a warning (the settings die with our links), observe answers
 *   from the record of what we last set (`dns-resolved-links`, for the links that still exist),
 *   and a create or update is a retryable driver error. Its return is a wake of the daemon
 *   (resources/monitor/system-bus.ts), whose next run re-observes.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AwgError } from '../../errors.js';
import type { Change } from '../../model/change.js';
import type { DnsSpec } from '../../model/resources.js';
import { specEqual } from '../../util/canonical.js';
import type { Exec } from '../../util/exec.js';
import type { StateStore } from '../../util/state.js';
import type { ApplyContext } from '../driver.js';
import { parseResolvectlLinks } from './parse.js';
import {
  LINK_PROPERTIES,
  RESOLVE1,
  RESOLVE1_LINK,
  RESOLVE1_MANAGER,
  RESOLVE1_PATH,
  linkPath,
  parseLinkProperties,
  parseNameHasOwner,
  setLinkDefaultRouteArgs,
  setLinkDnsArgs,
  setLinkDomainsArgs,
} from './resolved-bus.js';

/** what we last set per link (link name → spec): observe's answer while resolved is away */
export const RESOLVED_STATE_KEY = 'dns-resolved-links';

export interface ResolvedOptions {
  /** `busctl` (D-Bus) or `resolvectl` (default: busctl when it is installed) */
  client: 'busctl' | 'resolvectl';
  /** our links' ifindexes by name (default: /sys/class/net) */
  links?: ((prefix: string) => Promise<Map<string, number>>) | undefined;
}

export async function sysfsLinks(
  prefix: string,
  dir = '/sys/class/net',
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const idx = Number((await readFile(join(dir, name, 'ifindex'), 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(idx) && idx > 0) out.set(name, idx);
  }
  return out;
}

const unreachableMessage = (what: string) =>
  `systemd-resolved is not reachable on the system bus: ${what}`;

export function createResolved(o: ResolvedOptions) {
  const links = o.links ?? sysfsLinks;
  const busctl = (exec: Pick<Exec, 'read'>, args: string[]) =>
    exec.read('busctl', args, { allowFail: true });

  /** resolved answers (it owns its bus name); false when it or the bus is away */
  async function reachable(exec: Pick<Exec, 'read'>): Promise<boolean> {
    if (o.client === 'resolvectl')
      return (await exec.read('resolvectl', ['dns'], { allowFail: true })).code === 0;
    const r = await busctl(exec, [
      'call',
      'org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus',
      'NameHasOwner',
      's',
      RESOLVE1,
    ]);
    return r.code === 0 && parseNameHasOwner(r.stdout) === true;
  }

  async function readLink(exec: Pick<Exec, 'read'>, name: string, idx: number) {
    const r = await busctl(exec, [
      '--json=short',
      'get-property',
      RESOLVE1,
      linkPath(idx),
      RESOLVE1_LINK,
      ...LINK_PROPERTIES,
    ]);
    // a link resolved has not seen yet has no object: nothing set
    if (r.code !== 0) return undefined;
    return parseLinkProperties(name, r.stdout);
  }

  async function readAll(exec: Pick<Exec, 'read'>, prefix: string): Promise<DnsSpec[]> {
    const ours = await links(prefix);
    const out: DnsSpec[] = [];
    if (o.client === 'busctl') {
      for (const [name, idx] of ours) {
        const s = await readLink(exec, name, idx);
        if (s && (s.servers.length || s.domains.length)) out.push(s);
      }
    } else {
      const read = async (what: string) =>
        parseResolvectlLinks((await exec.read('resolvectl', [what])).stdout);
      const [dns, dom, route] = [
        await read('dns'),
        await read('domain'),
        await read('default-route'),
      ];
      for (const name of ours.keys()) {
        const servers = dns.get(name) ?? [];
        const domains = dom.get(name) ?? [];
        if (!servers.length && !domains.length) continue;
        const r = route.get(name)?.[0];
        out.push({
          scope: name,
          servers,
          domains,
          ...(r === 'yes' || r === 'no' ? { defaultRoute: r === 'yes' } : {}),
        });
      }
    }
    return out.sort((a, b) => (a.scope < b.scope ? -1 : 1));
  }

  function record(state: StateStore, scope: string, spec: DnsSpec | undefined): void {
    const held = { ...(state.get<Record<string, DnsSpec>>(RESOLVED_STATE_KEY) ?? {}) };
    if (spec) held[scope] = spec;
    else delete held[scope];
    if (Object.keys(held).length) state.set(RESOLVED_STATE_KEY, held);
    else state.delete(RESOLVED_STATE_KEY);
  }

  async function call(ctx: ApplyContext, method: string, args: string[]): Promise<void> {
    if (o.client === 'busctl')
      await ctx.exec.mutate('busctl', [
        'call',
        RESOLVE1,
        RESOLVE1_PATH,
        RESOLVE1_MANAGER,
        method,
        ...args,
      ]);
  }

  return {
    /** our links' settings as resolved holds them (or, while it is away, as we last set them) */
    async observe(exec: Pick<Exec, 'read'>, prefix: string, state: StateStore): Promise<DnsSpec[]> {
      if (await reachable(exec)) return readAll(exec, prefix);
      const ours = await links(prefix);
      return Object.values(state.get<Record<string, DnsSpec>>(RESOLVED_STATE_KEY) ?? {})
        .filter((s) => ours.has(s.scope))
        .sort((a, b) => (a.scope < b.scope ? -1 : 1));
    },

    async apply(change: Change<'dns'>, ctx: ApplyContext): Promise<boolean> {
      const spec = (change.after ?? change.before)!;
      if (spec.scope === 'system')
        throw new AwgError(
          'unsupported',
          'with systemd-resolved DNS is set per link: the model puts the system resolver on the default tunnel’s link (was the DNS manager probed?)',
        );
      if (!spec.scope.startsWith(ctx.claims.linkPrefix))
        throw new AwgError('bug', `dns scope ${spec.scope} is not one of our links`);
      const idx = (await links(ctx.claims.linkPrefix)).get(spec.scope);
      const up = await reachable(ctx.exec);
      if (change.action === 'delete') {
        if (!ctx.dryRun) record(ctx.state, spec.scope, undefined);
        // a link that is gone took its settings with it
        if (idx === undefined) return false;
        if (!up) {
          ctx.reporter.report({
            type: 'warning',
            message: unreachableMessage(
              `${spec.scope}'s DNS settings are left to go with the link (resolved keeps no settings of a deleted link)`,
            ),
          });
          return false;
        }
        const cur = await readAll(ctx.exec, ctx.claims.linkPrefix);
        if (!cur.some((s) => s.scope === spec.scope)) return false;
        if (o.client === 'busctl') await call(ctx, 'RevertLink', ['i', String(idx)]);
        else await ctx.exec.mutate('resolvectl', ['revert', spec.scope]);
        return true;
      }
      if (idx === undefined)
        throw new AwgError('driver', `cannot set DNS on ${spec.scope}: no such link`);
      if (!up) throw new AwgError('driver', unreachableMessage(`cannot set DNS on ${spec.scope}`));
      const cur = (await readAll(ctx.exec, ctx.claims.linkPrefix)).find(
        (s) => s.scope === spec.scope,
      );
      let n = 0;
      // DefaultRoute reads back as resolved's effective value, which is `false` for a link
      // without servers whatever was set: a link without settings of ours is always told
      if (spec.defaultRoute !== undefined && (!cur || cur.defaultRoute !== spec.defaultRoute)) {
        if (o.client === 'busctl')
          await call(ctx, 'SetLinkDefaultRoute', setLinkDefaultRouteArgs(idx, spec.defaultRoute));
        else
          await ctx.exec.mutate('resolvectl', [
            'default-route',
            spec.scope,
            spec.defaultRoute ? 'yes' : 'no',
          ]);
        n++;
      }
      if (!specEqual(cur?.domains ?? [], spec.domains)) {
        if (o.client === 'busctl')
          await call(ctx, 'SetLinkDomains', setLinkDomainsArgs(idx, spec.domains));
        else
          await ctx.exec.mutate('resolvectl', [
            'domain',
            spec.scope,
            ...(spec.domains.length ? spec.domains : ['']),
          ]);
        n++;
      }
      if (!specEqual(cur?.servers ?? [], spec.servers)) {
        if (o.client === 'busctl') await call(ctx, 'SetLinkDNS', setLinkDnsArgs(idx, spec.servers));
        else await ctx.exec.mutate('resolvectl', ['dns', spec.scope, ...spec.servers]);
        n++;
      }
      if (!ctx.dryRun) record(ctx.state, spec.scope, spec);
      return n > 0;
    },
  };
}
