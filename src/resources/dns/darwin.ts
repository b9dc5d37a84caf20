/**
 * macOS DNS driver.
 *
 * - scope `system`: the manual DNS servers (and search domains) of every enabled network
 *   service, via networksetup. Before the first change the original values of each service
 *   are saved in the StateStore (`darwin-dns`, atomic write) so `down` — or the next run
 *   after a crash — restores them exactly (`Empty` = back to DHCP-provided servers). A copy
 *   kept in the applied record after each converged apply (`owned()`) stands in for an
 *   unusable record (`load`).
 * - scope `<link>`: a supplemental resolver published in the dynamic store under our own
 *   key `State:/Network/Service/com.awg.<link>/DNS` (ServerAddresses +
 *   SupplementalMatchDomains), set and removed with scutil. `~domain` routing domains become
 *   match domains; `~.` has no per-link equivalent on macOS and is dropped there.
 * Observe reports the applied spec while the system still holds exactly what we wrote,
 * and the system's values otherwise (drift). After a change mDNSResponder's cache is
 * flushed (`dscacheutil -flushcache`, HUP).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { DnsSpec, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import {
  APPLIED_STATE_KEY,
  appliedCopy,
  checkedRecord,
  type StateStore,
} from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  DNS_FLUSH_COMMANDS,
  parseNetworksetupError,
  parseServiceList,
  parseValueList,
  setDnsServersArgs,
  setSearchDomainsArgs,
} from '../../platform/darwin/networksetup.js';
import {
  parseScutilShow,
  scutilRemoveScript,
  scutilSetDnsScript,
  scutilShowScript,
  type ScutilValue,
} from '../../platform/darwin/scutil.js';
import { privilegeKind } from '../../platform/darwin/privilege.js';
import { isObject, isStrings } from '../../util/shape.js';

export const DNS_STATE_KEY = 'darwin-dns';

interface ServiceDns {
  servers: string[];
  search: string[];
}
interface SystemRecord {
  applied: DnsSpec;
  /** what we wrote to every service; search null = search domains left alone */
  written: { servers: string[]; search: string[] | null };
  /** originals per service, saved before the first change */
  backup: Record<string, ServiceDns>;
}
interface LinkRecord {
  applied: DnsSpec;
  written: { servers: string[]; match: string[] };
}
interface DnsRecord {
  system?: SystemRecord;
  links: Record<string, LinkRecord>;
}

export interface DarwinDnsOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

export const dynamicStoreKey = (scope: string) => `State:/Network/Service/com.awg.${scope}/DNS`;
const searchOf = (domains: string[]) => domains.filter((d) => !d.startsWith('~'));
const matchOf = (domains: string[]) =>
  domains.map((d) => d.replace(/^~/, '')).filter((d) => d && d !== '.');
const eq = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

async function services(exec: Pick<Exec, 'read'>): Promise<string[]> {
  return parseServiceList((await exec.read('networksetup', ['-listallnetworkservices'])).stdout)
    .filter((s) => !s.disabled)
    .map((s) => s.name);
}

/** Current servers/search of one service; undefined if the service is gone. */
async function serviceDns(exec: Pick<Exec, 'read'>, svc: string): Promise<ServiceDns | undefined> {
  const s = await exec.read('networksetup', ['-getdnsservers', svc], { allowFail: true });
  if (s.code !== 0 || parseNetworksetupError(s.stdout)) return undefined;
  const d = await exec.read('networksetup', ['-getsearchdomains', svc], { allowFail: true });
  return {
    servers: parseValueList(s.stdout),
    search: d.code === 0 ? parseValueList(d.stdout) : [],
  };
}

async function setService(ctx: ApplyContext, args: string[]): Promise<void> {
  const r = await ctx.exec.mutate('networksetup', args, { allowFail: true });
  if (ctx.dryRun) return;
  const err = parseNetworksetupError(r.stdout);
  if (err || r.code !== 0)
    throw new AwgError(
      privilegeKind(`${r.stdout}\n${r.stderr}`),
      `networksetup ${args.join(' ')}: ${err?.message ?? (r.stderr || r.stdout).trim()}`,
    );
}

async function flush(ctx: ApplyContext): Promise<void> {
  for (const [cmd, args] of DNS_FLUSH_COMMANDS)
    await ctx.exec.mutate(cmd, args, { allowFail: true });
}

function strings(v: ScutilValue | undefined): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

async function storeDns(
  exec: Pick<Exec, 'read'>,
  scope: string,
): Promise<{ servers: string[]; match: string[] } | undefined> {
  const r = await exec.read('scutil', [], {
    input: scutilShowScript(dynamicStoreKey(scope)),
    allowFail: true,
  });
  const d = parseScutilShow(r.stdout);
  return d
    ? { servers: strings(d['ServerAddresses']), match: strings(d['SupplementalMatchDomains']) }
    : undefined;
}

const isSpec = (x: unknown): x is DnsSpec =>
  isObject(x) && typeof x.scope === 'string' && isStrings(x.servers) && isStrings(x.domains);

/** the record's shape (its values go to networksetup and scutil) */
function isDnsRecord(x: unknown): x is DnsRecord {
  if (!isObject(x) || !isObject(x.links)) return false;
  const links = Object.values(x.links).every(
    (l) =>
      isObject(l) &&
      isSpec(l.applied) &&
      isObject(l.written) &&
      isStrings(l.written.servers) &&
      isStrings(l.written.match),
  );
  if (!links) return false;
  const s = x.system;
  return (
    s === undefined ||
    (isObject(s) &&
      isSpec(s.applied) &&
      isObject(s.written) &&
      isStrings(s.written.servers) &&
      (s.written.search === null || isStrings(s.written.search)) &&
      isObject(s.backup) &&
      Object.values(s.backup).every(
        (b) => isObject(b) && isStrings(b.servers) && isStrings(b.search),
      ))
  );
}

/** the service holds exactly what we wrote */
const holdsOurs = (cur: ServiceDns, w: SystemRecord['written']) =>
  eq(cur.servers, w.servers) && (w.search === null || eq(cur.search, w.search));

/**
 * Our record. When it is unusable (moved aside and reported by the state store, or the wrong
 * shape: set aside here), the copy the last converged apply kept (`owned`): its link resolvers
 * (keys in our own namespace) and the originals of each service that still holds exactly what
 * we wrote. That apply verified every service held it; the originals were saved before our
 * first change and never rewritten. A service that holds something else now was changed by
 * someone after us: not ours, left alone (and backed up as it is by the next apply). Without
 * both records every service keeps the tunnel's DNS: no restore by guess.
 */
async function load(s: StateStore, exec: Pick<Exec, 'read'>): Promise<DnsRecord> {
  const r = checkedRecord(s, DNS_STATE_KEY, isDnsRecord, 'the macOS DNS driver');
  if (r) return r;
  const copy = appliedCopy(s, 'dns');
  if (!isDnsRecord(copy)) return { links: {} };
  const rec: DnsRecord = { links: copy.links };
  const ours: string[] = [];
  const others: string[] = [];
  if (copy.system) {
    const backup: Record<string, ServiceDns> = {};
    for (const [svc, orig] of Object.entries(copy.system.backup)) {
      const cur = await serviceDns(exec, svc);
      if (cur && holdsOurs(cur, copy.system.written)) {
        backup[svc] = orig;
        ours.push(svc);
      } else others.push(svc);
    }
    if (ours.length) rec.system = { ...copy.system, backup };
  }
  const links = Object.keys(copy.links);
  const what = [
    ...(ours.length ? [`the original DNS of ${ours.map((x) => `"${x}"`).join(', ')}`] : []),
    ...(links.length ? [`the resolvers of ${links.join(', ')}`] : []),
    ...(others.length
      ? [
          `not the originals of ${others.map((x) => `"${x}"`).join(', ')}: their DNS is no longer what awg wrote`,
        ]
      : []),
  ];
  if (what.length) s.recovered(DNS_STATE_KEY, APPLIED_STATE_KEY, what.join('; '));
  return rec;
}

export function createDarwinDnsDriver(opts: DarwinDnsOptions): Driver<'dns'> {
  return {
    kind: 'dns',
    async observe(scope: ObserveScope): Promise<ObserveResult<'dns'>> {
      const rec = await load(scope.state, opts.exec);
      const resources: Resource<'dns'>[] = [];
      const push = (spec: DnsSpec) =>
        resources.push({ kind: 'dns', id: ids.dns(spec.scope), spec, deps: [] });
      if (rec.system) {
        const sys = rec.system;
        let drift: DnsSpec | undefined;
        // the services we changed, and any enabled since (a new adapter): its DNS is not ours yet
        const all = new Set([...Object.keys(sys.backup), ...(await services(opts.exec))]);
        for (const svc of all) {
          const cur = await serviceDns(opts.exec, svc);
          if (!cur) continue;
          const okServers = eq(cur.servers, sys.written.servers);
          const okSearch = sys.written.search === null || eq(cur.search, sys.written.search);
          if (!okServers || !okSearch) {
            drift = {
              scope: 'system',
              servers: cur.servers,
              domains: okSearch ? sys.applied.domains : cur.search,
            };
            break;
          }
        }
        push(drift ?? sys.applied);
      }
      const scopes = new Set(Object.keys(rec.links));
      for (const r of scope.desired.resources)
        if (r.kind === 'dns' && (r.spec as DnsSpec).scope !== 'system')
          scopes.add((r.spec as DnsSpec).scope);
      for (const s of [...scopes].sort()) {
        const cur = await storeDns(opts.exec, s);
        if (!cur) continue;
        const l = rec.links[s];
        push(
          l && eq(cur.servers, l.written.servers) && eq(cur.match, l.written.match)
            ? l.applied
            : { scope: s, servers: cur.servers, domains: cur.match.map((d) => `~${d}`) },
        );
      }
      return { resources, foreign: [] };
    },

    async apply(change: Change<'dns'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const rec = await load(ctx.state, ctx.exec);
      const save = () => {
        if (!ctx.dryRun) ctx.state.set(DNS_STATE_KEY, rec);
      };
      const spec = change.after ?? change.before;
      if (!spec) throw new AwgError('bug', `${change.action} ${change.id} without a spec`);
      let changed = false;

      if (spec.scope === 'system') {
        if (change.action === 'delete') {
          const sys = rec.system;
          if (!sys) return 'unchanged';
          for (const [svc, orig] of Object.entries(sys.backup)) {
            const cur = await serviceDns(ctx.exec, svc);
            if (!cur) continue;
            if (!eq(cur.servers, orig.servers)) {
              await setService(ctx, setDnsServersArgs(svc, orig.servers));
              changed = true;
            }
            if (sys.written.search !== null && !eq(cur.search, orig.search)) {
              await setService(ctx, setSearchDomainsArgs(svc, orig.search));
              changed = true;
            }
          }
          delete rec.system;
          save();
          if (changed) await flush(ctx);
          return changed ? 'changed' : 'unchanged';
        }
        const after = change.after!;
        const search = searchOf(after.domains);
        const sys: SystemRecord = rec.system ?? {
          applied: after,
          written: { servers: after.servers, search: null },
          backup: {},
        };
        const cur = new Map<string, ServiceDns>();
        for (const svc of await services(ctx.exec)) {
          const d = await serviceDns(ctx.exec, svc);
          if (!d) continue;
          cur.set(svc, d);
          if (!sys.backup[svc]) sys.backup[svc] = d;
        }
        rec.system = sys;
        // the backup is durable before the first mutation
        save();
        for (const [svc, d] of cur) {
          if (!eq(d.servers, after.servers)) {
            await setService(ctx, setDnsServersArgs(svc, after.servers));
            changed = true;
          }
          const wantSearch = search.length
            ? search
            : sys.written.search !== null
              ? (sys.backup[svc]?.search ?? [])
              : undefined;
          if (wantSearch && !eq(d.search, wantSearch)) {
            await setService(ctx, setSearchDomainsArgs(svc, wantSearch));
            changed = true;
          }
        }
        sys.applied = after;
        sys.written = { servers: after.servers, search: search.length ? search : null };
        save();
        if (changed) await flush(ctx);
        return changed ? 'changed' : 'unchanged';
      }

      const key = dynamicStoreKey(spec.scope);
      const cur = await storeDns(ctx.exec, spec.scope);
      if (change.action === 'delete') {
        if (cur) {
          await ctx.exec.mutate('scutil', [], {
            input: scutilRemoveScript(key),
            display: `scutil <<< remove ${key}`,
          });
          changed = true;
        }
        delete rec.links[spec.scope];
        save();
        if (changed) await flush(ctx);
        return changed ? 'changed' : 'unchanged';
      }
      const after = change.after!;
      if (!after.servers.length)
        throw new AwgError(
          'invalid-config',
          `DNS for ${after.scope}: a supplemental resolver needs at least one server`,
        );
      const written = { servers: after.servers, match: matchOf(after.domains) };
      if (!written.match.length)
        ctx.reporter.report({
          type: 'warning',
          message: `DNS for ${after.scope}: without match domains macOS does not consult a supplemental resolver; use the system scope for default DNS`,
        });
      if (!cur || !eq(cur.servers, written.servers) || !eq(cur.match, written.match)) {
        await ctx.exec.mutate('scutil', [], {
          input: scutilSetDnsScript(key, written.servers, written.match),
          display: `scutil <<< set ${key} (${written.servers.join(' ')})`,
        });
        changed = true;
      }
      rec.links[spec.scope] = { applied: after, written };
      save();
      if (changed) await flush(ctx);
      return changed ? 'changed' : 'unchanged';
    },

    async owned(state: StateStore): Promise<DnsRecord | undefined> {
      const rec = await load(state, opts.exec);
      return rec.system || Object.keys(rec.links).length ? rec : undefined;
    },
  };
}
