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

export interface RuleMatch {
  /** index in config.rules (disabled rules keep their index) */
  index: number;
  /** ruleName(rule, index): the name of the rule's cgroup */
  name: string;
  target: string;
  fallback: Rule['fallback'];
}

export interface RuleMatcher {
  readonly rules: readonly Rule[];
  /** first enabled rule matching `exePath`, or undefined */
  match(exePath: string): RuleMatch | undefined;
  /** every enabled rule matching `exePath`, in rule order */
  failoverChain(exePath: string): RuleMatch[];
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

/** one match → a predicate over paths */
export function compileMatch(m: Match): (path: string) => boolean {
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

export function compileRules(rules: readonly Rule[]): RuleMatcher {
  // A rule without `match` (destinations only) is not decided by the program: placement by
  // executable never picks it; its destination sets decide in the firewall (integration of
  // `to:` pending on this branch).
  const compiled = rules.flatMap((rule, index) =>
    rule.enabled === false || rule.match === undefined
      ? []
      : [
          {
            test: compileMatch(rule.match!),
            info: {
              index,
              name: ruleName(rule, index),
              target: rule.target,
              fallback: rule.fallback ?? 'block',
            } satisfies RuleMatch,
          },
        ],
  );
  const names = new Map(compiled.map((c) => [c.info.name, c.info]));
  return {
    rules,
    match(exePath) {
      for (const c of compiled) if (c.test(exePath)) return c.info;
      return undefined;
    },
    failoverChain(exePath) {
      return compiled.filter((c) => c.test(exePath)).map((c) => c.info);
    },
    byName: (name) => names.get(name),
  };
}

/** Effective route of a matched process: a tunnel name, `direct` or `blocked`. */
export type Route = string;

/**
 * The route a process matched by `chain[0]` takes now (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks):
 * - target `block`, or fallback `drop` → blocked; target `direct` → direct;
 * - tunnel up → the tunnel;
 * - tunnel down: allow-direct → direct, block → blocked, failover → the next matching
 *   enabled rule (judged the same way), none left → blocked.
 */
export function effectiveRoute(
  chain: readonly RuleMatch[],
  tunnelUp: (name: string) => boolean,
): Route {
  for (const r of chain) {
    if (r.target === 'block' || r.fallback === 'drop') return 'blocked';
    if (r.target === 'direct') return 'direct';
    if (tunnelUp(r.target)) return r.target;
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
  tunnelUp: (name: string) => boolean,
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
