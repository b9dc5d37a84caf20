/**
 * The read-only commands the Linux drivers run to observe, in one place, so a caller can
 * start them before it needs them (`awg diff` starts them while it loads and validates
 * the config; see PrefetchExec). No runtime imports: this module must stay cheap to load.
 */
import type { Exec } from '../util/exec.js';

/** the nft table awg owns (claims.nftTable) */
export const DEFAULT_NFT_TABLE = 'awg';

export type Read = readonly [cmd: string, args: readonly string[]];

export const LINK_READ: Read = ['ip', ['-j', '-d', 'link', 'show']];
export const ADDR_READ: Read = ['ip', ['-j', '-d', 'addr', 'show']];
export const routeRead = (family: 4 | 6): Read => [
  'ip',
  ['-j', '-N', family === 6 ? '-6' : '-4', 'route', 'show', 'table', 'all'],
];
export const ruleRead = (family: 4 | 6): Read => [
  'ip',
  ['-j', '-N', family === 6 ? '-6' : '-4', 'rule', 'show'],
];
/**
 * Every table with its chains, rules, counters and set declarations, without set elements
 * (`-t`): the firewall driver's read of its table and of the others' names. nft 1.0.6 fetches
 * every set's elements for any other listing (`list table`, `list tables`, `-t` included):
 * ≈ 0.5 s for a table with a 65,000-interval set, against ≈ 10 ms for this one.
 */
export const NFT_RULESET_READ: Read = ['nft', ['-t', 'list', 'ruleset']];
/** the qdiscs: read over rtnetlink in this process on this host (shaper/qdiscs.ts) */
export const TC_QDISC_READ: Read = ['tc', ['-j', 'qdisc', 'show']];

/**
 * every command one observation of all Linux kinds runs on this host (the nft read covers any
 * table); the links, addresses, routes, rules and qdiscs are read over netlink in this process
 * there (link/rows.ts, route/linux.ts, rule/linux.ts, shaper/qdiscs.ts), by `ip` and `tc` only
 * through an Exec that runs elsewhere
 */
export function linuxObserveReads(_nftTable: string): Read[] {
  return [NFT_RULESET_READ];
}

/**
 * the listings the Linux drivers read, wherever their Exec runs: what one reconcile run shares
 * (read-pass.ts)
 */
export function linuxListings(): Read[] {
  return [LINK_READ, ADDR_READ, NFT_RULESET_READ, TC_QDISC_READ];
}

/**
 * One address family's read (`routeRead`, `ruleRead`) through `exec`, its JSON parsed for the
 * claimed band: how the route and rule drivers observe a family.
 */
export async function readFamily<Band, Parsed>(
  exec: Pick<Exec, 'read'>,
  read: (family: 4 | 6) => Read,
  parse: (json: string, family: 4 | 6, band: Band) => Parsed,
  family: 4 | 6,
  band: Band,
): Promise<Parsed> {
  const [cmd, args] = read(family);
  const r = await exec.read(cmd, [...args]);
  return parse(r.stdout, family, band);
}
