/**
 * Whether this host routes locally generated traffic beyond the main table's own prefixes
 * (model/unrouted.ts), from three listings of one family:
 * `ip -j -N route show table all exact <default>` (every table's default routes),
 * `ip -j -N rule show` and `ip -j -N route show table main`. Pure.
 *
 * A unicast default route counts when a rule outside awg's priority band looks its table up
 * (main through 32766, `default` through 32767, another table through a rule of its own,
 * whatever that rule's selectors: a source-specific one counts too, so awg never shadows a
 * route the host has). Routes and rules of awg's band never count: awg's own first route must
 * not hide the host's lack of one.
 */
import { canonicalDst, inBand, numberOrName } from './parse.js';
import type { UnroutedFamily } from '../../model/unrouted.js';

export interface RoutingBand {
  tableBase: number;
  rulePriority: number;
  bandSize: number;
}

/** a route of `ip -j -N route show`, as far as the probe reads it */
export interface RouteRow {
  type?: string;
  dst?: string;
  dev?: string;
  table?: string;
}

const TABLES: Record<string, number> = { main: 254, local: 255, default: 253, unspec: 0 };
const TYPES: Record<string, string> = {
  '1': 'unicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  '9': 'throw',
};
const ERROR_TYPES = new Set(['unreachable', 'blackhole', 'prohibit']);

function rows<T>(text: string, what: string): T[] {
  const t = text.trim();
  if (!t) return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error(`${what}: expected a JSON array`);
  return v as T[];
}

const typeOf = (r: RouteRow): string =>
  r.type === undefined ? 'unicast' : (TYPES[r.type] ?? r.type);

/** a rule of `ip -j -N rule show`, as far as the probe reads it */
export interface RuleRow {
  priority?: number;
  table?: string;
  action?: string;
}

/** the tables rules outside awg's band look up */
export function lookedUp(rulesJson: string | readonly RuleRow[], band: RoutingBand): Set<number> {
  const out = new Set<number>();
  const list =
    typeof rulesJson === 'string'
      ? rows<Record<string, unknown>>(rulesJson, 'ip -j rule')
      : rulesJson;
  for (const r of list) {
    const priority = Number(r.priority ?? 0);
    if (priority >= band.rulePriority && priority < band.rulePriority + band.bandSize) continue;
    if (r.action !== undefined || r.table === undefined) continue;
    out.add(numberOrName(String(r.table), TABLES, NaN));
  }
  return out;
}

/**
 * This family's routing when the host has no unicast default route a rule leads to; undefined
 * when it has one.
 */
export function unroutedOf(
  listings: { defaults: string; rules: string; main: string },
  family: 4 | 6,
  band: RoutingBand,
  linkPrefix: string,
): UnroutedFamily | undefined {
  return unroutedOfRows(
    {
      defaults: rows<RouteRow>(listings.defaults, 'ip -j route'),
      rules: rows<RuleRow>(listings.rules, 'ip -j rule'),
      main: rows<RouteRow>(listings.main, 'ip -j route'),
    },
    family,
    band,
    linkPrefix,
  );
}

/** `unroutedOf` of the listings' rows (the netlink probe's, route/probe-netlink.ts, or the JSON's) */
export function unroutedOfRows(
  listings: {
    defaults: readonly RouteRow[];
    rules: readonly RuleRow[];
    main: readonly RouteRow[];
  },
  family: 4 | 6,
  band: RoutingBand,
  linkPrefix: string,
): UnroutedFamily | undefined {
  const tables = lookedUp(listings.rules, band);
  const band4 = { tableBase: band.tableBase, bandSize: band.bandSize, protocol: 0 };
  let mainDefault: UnroutedFamily['mainDefault'];
  for (const r of listings.defaults) {
    const table = numberOrName(r.table, TABLES, 254);
    if (inBand(table, band4) || !tables.has(table)) continue;
    const type = typeOf(r);
    if (type === 'unicast') return undefined;
    if (table === 254 && ERROR_TYPES.has(type))
      mainDefault = type as NonNullable<UnroutedFamily['mainDefault']>;
  }
  const reach = new Set<string>();
  for (const r of listings.main) {
    if (typeOf(r) !== 'unicast' || r.dst === undefined || r.dst === 'default') continue;
    // our links' routes, and IPv6 link-local prefixes (on every link; no destination of an app)
    if (r.dev?.startsWith(linkPrefix) || /^fe80:/i.test(r.dst)) continue;
    reach.add(canonicalDst(r.dst, family));
  }
  return { reach: [...reach].sort(), ...(mainDefault ? { mainDefault } : {}) };
}

/** `ip route get`'s complaint without iproute2's prefix: `Network is unreachable` */
export function routeGetError(stderr: string): string {
  const line = stderr.trim().split('\n').pop() ?? '';
  return line.replace(/^RTNETLINK answers:\s*/, '').trim() || 'no route';
}
