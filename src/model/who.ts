/**
 * Identity rules (`match: {user}`, `{unit}`, `{cgroup}`): who the firewall matches in place.
 * Pure.
 *
 * - `user: alice | 1000` → `{kind: 'uid'}`: `meta skuid` (per socket; running processes
 *   included). A name is resolved through the host fact `users` (/etc/passwd, probed in
 *   resources/facts.ts); a name the host does not know is a config error at plan time.
 * - `unit: nginx.service` → the unit's cgroup (`unitCgroups` fact: systemd's ControlGroup
 *   when systemd runs, else `/system.slice/<unit>`); `cgroup: /x/y` → that path. Both
 *   `{kind: 'cgroups', set: 'w_<rule>', level}`: a `cgroupsv2` set the daemon keeps filled with
 *   the cgroup's current id (daemon/cgroup-sets.ts), matched by `socket cgroupv2 level N
 *   @w_<rule>`. `level` is the depth below the cgroup2 root (a hybrid host's `unified/` prefix
 *   is part of nft's path, not of the level). `cgroupBase` is the probed facts' depth of the
 *   mount's root (HostFacts.cgroupRootDepth, 0 outside containers).
 * - `flatpak:` and program rules: undefined (the placer moves their processes into the rule's
 *   own cgroup `awg/<rule>`).
 */
import { AwgError } from '../errors.js';
import type { Rule } from '../config/schema.js';
import { defaultUnitCgroup, ruleName } from './match.js';

/** How the firewall names a rule's processes when they are not moved into a cgroup of ours. */
export type Who = { kind: 'uid'; uid: number } | { kind: 'cgroups'; set: string; level: number };

/** Host facts identity rules need (part of HostFacts). */
export interface IdentityFacts {
  /** user name → uid, for the user names the rules use (/etc/passwd) */
  users?: Record<string, number>;
  /** unit → its cgroup path from the hierarchy root, as systemd reports it (running units) */
  unitCgroups?: Record<string, string>;
}

/** the `cgroupsv2` set of a unit/cgroup rule */
export function whoSetName(rule: string): string {
  return `w_${rule}`;
}

/**
 * The cgroup (from the hierarchy root, `/system.slice/x.service`) a unit/cgroup rule matches,
 * or undefined for other rules.
 */
export function ruleCgroupPath(rule: Rule, facts: IdentityFacts): string | undefined {
  const m = rule.match;
  if (m === undefined) return undefined;
  if ('cgroup' in m) return m.cgroup;
  if ('unit' in m) return facts.unitCgroups?.[m.unit] ?? defaultUnitCgroup(m.unit);
  return undefined;
}

/** `user: <name>` → its uid from the facts; throws a located config error when unknown */
export function ruleUid(rule: Rule, index: number, facts: IdentityFacts): number | undefined {
  const m = rule.match;
  if (m === undefined || !('user' in m)) return undefined;
  if (typeof m.user === 'number') return m.user;
  const uid = facts.users?.[m.user];
  if (uid !== undefined) return uid;
  const message = `unknown user "${m.user}" (not in /etc/passwd of this host)`;
  throw new AwgError('invalid-config', `rules[${index}].match.user: ${message}`, {
    issues: [{ file: '', path: `rules[${index}].match.user`, message, severity: 'error' }],
    hint: 'create the user, or name it by uid (`user: 1000`)',
  });
}

/**
 * Who the firewall matches for rule `index` (see the file comment); undefined for rules the
 * placer moves and for destination-only rules.
 */
export function ruleWho(
  rule: Rule,
  facts: IdentityFacts,
  cgroupBase: { rootDepth: number },
  index: number,
): Who | undefined {
  const uid = ruleUid(rule, index, facts);
  if (uid !== undefined) return { kind: 'uid', uid };
  const path = ruleCgroupPath(rule, facts);
  if (path === undefined) return undefined;
  return {
    kind: 'cgroups',
    set: whoSetName(ruleName(rule, index)),
    level: cgroupLevel(cgroupBase.rootDepth, path),
  };
}

/**
 * The depth nft's `socket cgroupv2 level` compares for a cgroup path below the v2 mount: the
 * mount root's own depth plus the path's segments (as resources/cgroup/parse.ts nftCgroupRef;
 * a hybrid host's `unified/` prefix is where nft looks the path up, not a level).
 */
export function cgroupLevel(rootDepth: number, path: string): number {
  const segs = path.split('/').filter((s) => s !== '');
  if (segs.length === 0) throw new AwgError('bug', 'cgroupLevel of the cgroup root');
  return rootDepth + segs.length;
}

/** One `w_<rule>` set and the cgroup it holds (from the hierarchy root). */
export interface WhoSet {
  set: string;
  paths: string[];
}

/** The `w_<rule>` sets of the enabled unit/cgroup rules, in rule order (for the filler). */
export function whoSets(rules: readonly Rule[], facts: IdentityFacts): WhoSet[] {
  const out: WhoSet[] = [];
  rules.forEach((r, i) => {
    if (r.enabled === false) return;
    const path = ruleCgroupPath(r, facts);
    if (path !== undefined) out.push({ set: whoSetName(ruleName(r, i)), paths: [path] });
  });
  return out;
}

/** /etc/passwd → name → uid (malformed lines skipped; the first entry of a name wins) */
export function parsePasswd(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = Number(f[2]);
    if (f.length < 4 || f[0] === '' || !/^\d+$/.test(f[2] ?? '') || !Number.isSafeInteger(uid))
      continue;
    if (!Object.hasOwn(out, f[0]!)) out[f[0]!] = uid;
  }
  return out;
}

/** the user names and units the enabled rules name (what the facts probe looks up) */
export function identityNames(rules: readonly Rule[]): { users: string[]; units: string[] } {
  const users = new Set<string>();
  const units = new Set<string>();
  for (const r of rules) {
    const m = r.match;
    if (r.enabled === false || m === undefined) continue;
    if ('user' in m && typeof m.user === 'string') users.add(m.user);
    if ('unit' in m) units.add(m.unit);
  }
  return { users: [...users].sort(), units: [...units].sort() };
}
