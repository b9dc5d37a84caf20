/**
 * Rule matching of executables. Pure.
 *
 * The subject is the executable's resolved absolute path, as `readlink /proc/PID/exe` gives
 * it: symlinks are already resolved (`/usr/bin/python3` runs as `/usr/bin/python3.11`), and
 * the kernel's ` (deleted)` suffix of a replaced binary is stripped by `exeSubject`.
 *
 * Case rules, per match kind (case-sensitive unless `ignoreCase: true`, which folds both
 * sides with `toLowerCase`):
 * - `name`: the basename equals the name exactly (no substring, no glob).
 * - `path`: picomatch glob over the whole path with `dot: true` (`*` stays inside a segment
 *   and also matches dot files, `**` spans segments). picomatch backtracks, so the schema
 *   bounds what a glob may hold (config/grammar.ts globProblem).
 * - `dir`: the path lies below the directory on a segment boundary (`/opt/app` matches
 *   `/opt/app/bin/x`, not `/opt/apple/x`); trailing slashes of the rule are ignored, `/`
 *   matches everything.
 * - `regex`: a JavaScript regular expression tested against the whole path, unanchored
 *   (`firefox` matches `/usr/lib/firefox-esr/firefox-esr`; write `^…$` to anchor), run by
 *   the linear-time engine (util/linear-regex.ts: no backreferences or lookaround), so no
 *   pattern can make the real-time placer backtrack exponentially.
 *
 * Rules are ordered; disabled rules never match; the first enabled match wins.
 * `failoverChain` lists every enabled match in order, which is what `fallback: failover`
 * walks when the winning rule's tunnel is down.
 */
import picomatch from 'picomatch';
import { AwgError } from '../errors.js';
import { compileLinearRegex, type LinearRegex } from '../util/linear-regex.js';
import type { Match, Rule } from '../config/schema.js';
import { matchedInPlace } from '../config/schema-rules.js';

export interface RuleMatch {
  /** index in config.rules (disabled rules keep their index) */
  index: number;
  /** ruleName(rule, index): the name of the rule's cgroup */
  name: string;
  target: string;
  fallback: Rule['fallback'];
  /** how the rule's processes are routed (absent: `exe`) */
  placedBy?: Placement;
}

export interface RuleMatcher {
  readonly rules: readonly Rule[];
  /** which parts of a Subject the enabled rules look at beyond the executable */
  readonly needs: { uid: boolean; cgroup: boolean; flatpak: boolean };
  /** first enabled rule matching the subject (an executable path, or a Subject), or undefined */
  match(subject: string | Subject): RuleMatch | undefined;
  /** every enabled rule matching the subject, in rule order */
  failoverChain(subject: string | Subject): RuleMatch[];
  /** the enabled rule whose cgroup is called `name` */
  byName(name: string): RuleMatch | undefined;
}

const DELETED = ' (deleted)';

/** readlink(/proc/PID/exe) → the path rules are matched against */
export function exeSubject(link: string): string {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : link;
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

/** How a rule's processes get their route. */
export type Placement = 'exe' | 'flatpak' | 'nft';

/**
 * `exe`: name/path/dir/regex, moved into the rule's cgroup by the placer; `flatpak`: moved
 * the same way, by the sandbox's application id; `nft`: user/unit/cgroup, matched by the
 * firewall (`meta skuid`, `socket cgroupv2 … @w_<rule>`) where the process is: never moved.
 */
export function placedBy(m: Match): Placement {
  if (matchedInPlace(m)) return 'nft';
  if ('flatpak' in m) return 'flatpak';
  return 'exe';
}

/**
 * What a process is matched by: its executable, and where identity rules exist, its uid,
 * its cgroup v2 path (as /proc/PID/cgroup shows it, from the hierarchy root: `/system.slice/x`)
 * and its Flatpak application id. An unknown part fits no rule of its kind.
 */
export interface Subject {
  exe: string;
  uid?: number | undefined;
  cgroup?: string | undefined;
  flatpak?: string | undefined;
}

/** What compiling identity matches needs to know of the host. */
export interface IdentityLookup {
  /** user name → uid (/etc/passwd); an unknown name fits nobody */
  uidOf?: ((name: string) => number | undefined) | undefined;
  /** unit → its cgroup path from the hierarchy root; default `/system.slice/<unit>` */
  unitCgroup?: ((unit: string) => string | undefined) | undefined;
}

/** `/system.slice/<unit>`: where systemd puts a system unit when nothing else says so */
export function defaultUnitCgroup(unit: string): string {
  return `/system.slice/${unit}`;
}

/** `path` is `dir` or below it (cgroup paths, both from the hierarchy root) */
function cgroupWithin(path: string, dir: string): boolean {
  const d = dir.replace(/\/+$/, '');
  return d === '' || path === d || path.startsWith(`${d}/`);
}

/** one match → a predicate over subjects (the identity kinds need `lookup` for user names and units) */
export function compileSubjectMatch(
  m: Match,
  lookup: IdentityLookup = {},
): (s: Subject) => boolean {
  if ('user' in m) {
    const uid = typeof m.user === 'number' ? m.user : lookup.uidOf?.(m.user);
    return (s) => uid !== undefined && s.uid === uid;
  }
  if ('unit' in m) {
    const path = lookup.unitCgroup?.(m.unit) ?? defaultUnitCgroup(m.unit);
    return (s) => s.cgroup !== undefined && cgroupWithin(s.cgroup, path);
  }
  if ('cgroup' in m) {
    const path = m.cgroup;
    return (s) => s.cgroup !== undefined && cgroupWithin(s.cgroup, path);
  }
  if ('flatpak' in m) {
    const id = m.flatpak;
    return (s) => s.flatpak === id;
  }
  const byPath = compileMatch(m);
  return (s) => byPath(s.exe);
}

/** one match → a predicate over executable paths (identity kinds never fit by path) */
export function compileMatch(m: Match): (path: string) => boolean {
  if ('user' in m || 'unit' in m || 'cgroup' in m || 'flatpak' in m) return () => false;
  const fold = m.ignoreCase === true;
  const f = (s: string) => (fold ? s.toLowerCase() : s);
  if ('name' in m) {
    const want = f(m.name);
    return (p) => f(basename(p)) === want;
  }
  if ('dir' in m) {
    const dir = f(m.dir.replace(/\/+$/, ''));
    const prefix = `${dir}/`;
    return (p) => {
      const s = f(p);
      return s === dir || s.startsWith(prefix);
    };
  }
  if ('path' in m) {
    const isMatch = picomatch(m.path, { dot: true, nocase: fold });
    return (p) => isMatch(p);
  }
  let re: LinearRegex;
  try {
    re = compileLinearRegex(m.regex, { ignoreCase: fold });
  } catch (e) {
    throw new AwgError(
      'invalid-config',
      `invalid regular expression ${JSON.stringify(m.regex)}: ${(e as Error).message}`,
    );
  }
  return (p) => re.test(p);
}

/** A rule's name: `rule.name`, or `rule-<index>` (its position in the config's list). */
export function ruleName(rule: Pick<Rule, 'name'>, index: number): string {
  return rule.name ?? `rule-${index}`;
}

export function compileRules(rules: readonly Rule[], lookup: IdentityLookup = {}): RuleMatcher {
  // A rule without `match` (destinations only) is not decided by the program: placement by
  // executable never picks it; its destination sets decide in the firewall.
  const compiled = rules.flatMap((rule, index) =>
    rule.enabled === false || rule.match === undefined
      ? []
      : [
          {
            test: compileSubjectMatch(rule.match, lookup),
            info: {
              index,
              name: ruleName(rule, index),
              target: rule.target,
              fallback: rule.fallback ?? 'block',
              ...(placedBy(rule.match) !== 'exe' ? { placedBy: placedBy(rule.match) } : {}),
            } satisfies RuleMatch,
          },
        ],
  );
  const needs = { uid: false, cgroup: false, flatpak: false };
  for (const r of rules) {
    const m = r.enabled === false ? undefined : r.match;
    if (m === undefined) continue;
    if ('user' in m) needs.uid = true;
    if ('unit' in m || 'cgroup' in m) needs.cgroup = true;
    if ('flatpak' in m) needs.flatpak = true;
  }
  const names = new Map(compiled.map((c) => [c.info.name, c.info]));
  const subj = (s: string | Subject): Subject => (typeof s === 'string' ? { exe: s } : s);
  return {
    rules,
    needs,
    match(subject) {
      const s = subj(subject);
      for (const c of compiled) if (c.test(s)) return c.info;
      return undefined;
    },
    failoverChain(subject) {
      const s = subj(subject);
      return compiled.filter((c) => c.test(s)).map((c) => c.info);
    },
    byName: (name) => names.get(name),
  };
}

/** Effective route of a matched process: a tunnel name, `direct` or `blocked`. */
export type Route = string;

/**
 * Is `tunnel` up for the rule named `rule` (absent: for traffic no rule routes)? A rule held
 * on its fallback (`sticky: true`, daemon/sticky.ts) sees its tunnel down while it is up.
 */
export type TunnelUp = (tunnel: string, rule?: string) => boolean;

/** TunnelUp of the daemon's health view: the tunnels not up, the rules held on their fallback */
export function tunnelUpOf(
  down: ReadonlySet<string>,
  held: ReadonlySet<string> = new Set(),
): TunnelUp {
  return (t, rule) => !down.has(t) && !(rule !== undefined && held.has(rule));
}

/**
 * The route a process matched by `chain[0]` takes now (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks):
 * - target `block`, or fallback `drop` → blocked; target `direct` → direct;
 * - tunnel up → the tunnel;
 * - tunnel down: allow-direct → direct, block → blocked, failover → the next matching
 *   enabled rule (judged the same way), none left → blocked.
 */
export function effectiveRoute(chain: readonly RuleMatch[], tunnelUp: TunnelUp): Route {
  for (const r of chain) {
    if (r.target === 'block' || r.fallback === 'drop') return 'blocked';
    if (r.target === 'direct') return 'direct';
    if (tunnelUp(r.target, r.name)) return r.target;
    if (r.fallback === 'allow-direct') return 'direct';
    if (r.fallback === 'block') return 'blocked';
  }
  return 'blocked';
}

/** Route of traffic no rule matches: `default` is `direct` or a tunnel (blocked while down). */
export function defaultRoute(def: string, tunnelUp: (name: string) => boolean): Route {
  if (def === 'direct') return 'direct';
  return tunnelUp(def) ? def : 'blocked';
}

/** What `awg exec` was told: a tunnel, direct, or a rule's route (procs/exec-target.ts). */
export type ExecChoice = { tunnel: string } | { direct: true } | { rule: string };

/**
 * The route of a process under `awg exec` where no cgroup carries it (the macOS flow router,
 * resources/flow/exec-routes.ts), as Linux's exec cgroups give it (model/desired.ts):
 * - `tunnel`: the tunnel, blocked while it is down (`_exec-T`: the tunnel's mark, whose
 *   table holds an unreachable default);
 * - `direct`: direct;
 * - `rule`: undefined (the rules decide) when an enabled rule matches `exePath` itself, as
 *   Linux's placer moves such a process into its own rule's cgroup; else the rule's route
 *   (ruleAction of its cgroup: `failover` ends at blocked), and the rule; a rule that is
 *   gone from the config: blocked.
 */
export function execRoute(
  choice: ExecChoice,
  exePath: string,
  matcher: RuleMatcher,
  tunnelUp: TunnelUp,
): { route: Route; rule?: RuleMatch } | undefined {
  if ('direct' in choice) return { route: 'direct' };
  if ('tunnel' in choice)
    return {
      route: effectiveRoute(
        [{ index: -1, name: `_exec-${choice.tunnel}`, target: choice.tunnel, fallback: 'block' }],
        tunnelUp,
      ),
    };
  if (matcher.match(exePath)) return undefined;
  const rule = matcher.byName(choice.rule);
  if (!rule) return { route: 'blocked' };
  return { route: effectiveRoute([rule], tunnelUp), rule };
}
