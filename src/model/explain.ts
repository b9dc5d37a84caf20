/**
 * `awg explain`: why one connection of one process takes the route it takes. Pure.
 *
 * The walk is the firewall's (route_out of resources/firewall/render.ts): the enabled rules in
 * order; a rule fits when its program part AND its destination part both hold (a missing part
 * holds for everything); the first fitting rule decides; `default:` decides the rest.
 *
 * The program part of a rule with an executable `match` is what the firewall checks: the
 * cgroup the process sits in, not the executable. A process is placed (moved into
 * `awg/<rule>`) by its first fitting program rule, so a later rule whose `match` also fits
 * the executable does not hold for it; `awg exec` cgroups (`_exec-T`, `_exec-direct`) hold
 * no rule's program part, and are decided after the config's rules (model/desired.ts orders
 * them so). Identity kinds (user, unit, cgroup, flatpak) are one case each in `programPart`.
 *
 * Tunnel health (match.ts effectiveRoute): a fitting rule whose tunnel is down goes direct
 * (allow-direct), is blocked (block), or steps aside (failover): a rule without `match` is
 * skipped by the firewall, one with `match` hands the process on to its next fitting program
 * rule (the placer moves it) or, with none left, blocks.
 */
import { parseV4, v4String } from '../config/cidr.js';
import {
  formatInterval4,
  formatInterval6,
  parseV6,
  v6String,
  type DestinationSet,
  type Interval,
} from '../config/lists.js';
import type { Match, Rule } from '../config/schema-rules.js';
import {
  compileSubjectMatch,
  placedBy,
  ruleName,
  type IdentityLookup,
  type Route,
  type TunnelUp,
} from './match.js';

/** who sends: what /proc/PID tells */
export interface ExplainSubject {
  /** resolved executable path (match.ts exeSubject) */
  exe?: string | undefined;
  uid?: number | undefined;
  /** cgroup v2 path, relative to the mount (procs/cgroups.ts relativeCgroup) */
  cgroup?: string | undefined;
  /** flatpak application id (`/proc/PID/root/.flatpak-info`) */
  flatpak?: string | undefined;
}

export interface ExplainDestination {
  /** an IPv4 or IPv6 address */
  addr: string;
  port: number;
  proto: 'tcp' | 'udp';
  /** the name the address was resolved from, if any */
  name?: string | undefined;
}

/** Where the process sits in awg's cgroup subtree (procs/cgroups.ts classifyCgroup). */
export type ExplainPlacement =
  | { kind: 'rule'; name: string }
  | { kind: 'exec'; target: string }
  | { kind: 'root' }
  | { kind: 'outside' };

/** one entry of the DNS learner's book (util/dns-learner.ts LearnedEntry) */
export interface LearnedFact {
  rule: string;
  /** the listed name the answer was for */
  name: string;
  /** the CNAME target that carried the address, when not `name` itself */
  via?: string | undefined;
  /** ms, on the clock of `ExplainContext.now` */
  expiresAt: number;
}

/** a rule's destinations: merged, and (for reasons) per source: `rules[2].to.cidrs`, a list file */
export interface RuleDestinations {
  set: DestinationSet;
  sources?: readonly { label: string; set: DestinationSet }[] | undefined;
}

export interface ExplainContext {
  /** by rule name (ruleName): the destinations of rules with `to` */
  destinations: ReadonlyMap<string, RuleDestinations>;
  tunnelUp: TunnelUp;
  /** `default:` of the config */
  defaultRoute: string;
  /** `ipv6:` of the config (default tunnel) */
  ipv6?: 'tunnel' | 'block' | 'allow' | undefined;
  /** the learned book: entries for this address (default: none) */
  learned?: ((addr: string) => readonly LearnedFact[]) | undefined;
  /** ms, the clock of LearnedFact.expiresAt */
  now?: number | undefined;
  /** where the process sits; absent: where the placer would put it (from the executable) */
  placement?: ExplainPlacement | undefined;
  /** the pid whose runtime limit (`awg limit`) shapes the process */
  limit?: number | undefined;
  /** user names and unit cgroups of identity rules (default: none known; units at system.slice) */
  lookup?: IdentityLookup | undefined;
}

export interface ExplainPart {
  /** 'n/a': the rule has no such part, which holds for everything */
  fits: boolean | 'n/a';
  why: string;
}

export type ExplainVerdict = 'disabled' | 'no-fit' | 'decides' | 'steps-aside';

export interface ExplainStep {
  rule: string;
  /** index in config.rules; -1 for an `awg exec` cgroup */
  index: number;
  enabled: boolean;
  target: string;
  program: ExplainPart;
  destination: ExplainPart;
  verdict: ExplainVerdict;
  /** what the verdict means (the route, or why the rule steps aside) */
  why?: string;
}

export interface ExplainDecision {
  /** the deciding rule; absent: `default:` decided */
  rule?: string;
  /** a tunnel name, `direct` or `blocked` */
  route: Route;
  why: string;
}

export interface Explanation {
  steps: ExplainStep[];
  decision: ExplainDecision;
}

type Addr = { family: 4; v: number; text: string } | { family: 6; v: bigint; text: string };

export function parseAddr(s: string): Addr | undefined {
  if (!s.includes(':')) {
    const v = parseV4(s);
    return v === undefined ? undefined : { family: 4, v, text: v4String(v) };
  }
  const v = parseV6(s);
  if (v === undefined) return undefined;
  // an IPv4-mapped IPv6 address is the IPv4 address to the firewall's `ip daddr`
  if (v >> 32n === 0xffffn) {
    const v4 = Number(v & 0xffffffffn);
    return { family: 4, v: v4, text: v4String(v4) };
  }
  return { family: 6, v, text: v6String(v) };
}

function findInterval<T extends number | bigint>(
  xs: readonly Interval<T>[],
  a: T,
): Interval<T> | undefined {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const x = xs[mid]!;
    if (a < x.start) hi = mid - 1;
    else if (a > x.end) lo = mid + 1;
    else return x;
  }
  return undefined;
}

/** the set's interval holding `a`, formatted as nft shows it */
function intervalOf(set: DestinationSet, a: Addr): string | undefined {
  if (a.family === 4) {
    const i = findInterval(set.v4, a.v);
    return i && formatInterval4(i);
  }
  const i = findInterval(set.v6, a.v);
  return i && formatInterval6(i);
}

/**
 * the domains entry of `set` that lists `name`: `example.org`, `*.example.net`,
 * `full:example.com`, `keyword:google` or `regexp:…`
 */
export function domainEntry(set: DestinationSet, name: string): string | undefined {
  return set.domains.entryFor(name);
}

function seconds(ms: number): string {
  return `${Math.max(0, Math.round(ms / 1000))} s`;
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 'es'}`;
}

/** does the rule's `to` contain the destination? */
function destinationPart(
  rule: Rule,
  name: string,
  index: number,
  dest: Addr,
  destName: string | undefined,
  ctx: ExplainContext,
): ExplainPart {
  if (!rule.to) return { fits: 'n/a', why: 'no `to`: every destination' };
  const d = ctx.destinations.get(name);
  if (!d) return { fits: false, why: `the destinations of rules[${index}] are not loaded` };
  const { set } = d;
  const hit = intervalOf(set, dest);
  if (hit !== undefined) {
    const from = (d.sources ?? [])
      .filter((s) => intervalOf(s.set, dest) !== undefined)
      .map((s) => s.label);
    return {
      fits: true,
      why: `${dest.text} is in ${hit}${from.length ? ` (${from.join(', ')})` : ''}`,
    };
  }
  const now = ctx.now ?? 0;
  const learned = (ctx.learned?.(dest.text) ?? []).filter((l) => l.rule === name);
  if (learned.length) {
    const l = learned.reduce((a, b) => (b.expiresAt > a.expiresAt ? b : a));
    const entry = domainEntry(set, l.name);
    const what = entry && entry !== l.name ? `${l.name} (${entry})` : l.name;
    const left = l.expiresAt - now;
    return {
      fits: true,
      why: `learned for ${what}${l.via ? ` via CNAME ${l.via}` : ''}, ${left > 0 ? `expires in ${seconds(left)}` : `expired ${seconds(-left)} ago, kept while connections use it`}`,
    };
  }
  const count = dest.family === 4 ? set.v4.length : set.v6.length;
  const prefixes =
    count === 0
      ? `the rule has no IPv${dest.family} prefixes`
      : `not in the rule's ${plural(count, 'prefix')}`;
  const domains = set.domains.size;
  if (domains === 0) return { fits: false, why: `${dest.text}: ${prefixes}` };
  const entry = destName !== undefined ? domainEntry(set, destName) : undefined;
  return {
    fits: false,
    why:
      entry !== undefined
        ? `${prefixes}; ${destName} is listed (${entry}), but ${dest.text} was not learned for it (the firewall matches the addresses learned from DNS answers through awg)`
        : `${prefixes}, and the rule's domains learned no such address`,
  };
}

/** how a match is decided: placed by the executable or the Flatpak id (moved into the rule's cgroup), or in place by nft (uid, cgroup) */
type MatchKind = 'exe' | 'nft';

function matchKind(m: Match): MatchKind {
  return placedBy(m) === 'nft' ? 'nft' : 'exe';
}

function describeMatch(m: Match): string {
  if ('name' in m) return `match.name ${m.name}`;
  if ('path' in m) return `match.path ${m.path}`;
  if ('dir' in m) return `match.dir ${m.dir}`;
  if ('regex' in m) return `match.regex ${m.regex}`;
  if ('user' in m) return `match.user ${m.user}`;
  if ('unit' in m) return `match.unit ${m.unit}`;
  if ('cgroup' in m) return `match.cgroup ${m.cgroup}`;
  return `match.flatpak ${m.flatpak}`;
}

/** what the subject shows of the part a match looks at */
function subjectText(m: Match, s: ExplainSubject): string {
  if ('user' in m) return s.uid !== undefined ? `uid ${s.uid}` : 'an unknown uid';
  if ('unit' in m || 'cgroup' in m)
    return s.cgroup !== undefined ? `cgroup ${s.cgroup}` : 'an unknown cgroup';
  if ('flatpak' in m) return s.flatpak !== undefined ? `flatpak ${s.flatpak}` : 'no Flatpak app';
  return s.exe ?? '(unknown executable)';
}

function placementText(p: ExplainPlacement, cgroupOf: (rule: string) => string): string {
  switch (p.kind) {
    case 'rule':
      return `the process sits in ${cgroupOf(p.name)}`;
    case 'exec':
      return `the process sits in ${cgroupOf(`_exec-${p.target}`)} (awg exec)`;
    case 'root':
      return `the process sits in ${cgroupOf('').replace(/\/$/, '')} (no rule's cgroup)`;
    case 'outside':
      return "the process is not in awg's cgroups";
  }
}

interface Walk {
  rules: readonly Rule[];
  subject: ExplainSubject;
  /** enabled rules whose executable match fits the subject, in order */
  exeFits: (i: number) => boolean;
  lookup: IdentityLookup;
  placement: ExplainPlacement;
  cgroupOf: (rule: string) => string;
}

/** does the rule's program part hold for the subject? */
function programPart(rule: Rule, name: string, w: Walk): ExplainPart {
  const m = rule.match;
  if (m === undefined) return { fits: 'n/a', why: 'no `match`: every program' };
  switch (matchKind(m)) {
    case 'nft': {
      // matched where the process is, by its uid or its cgroup, never moved
      const fits = compileSubjectMatch(m, w.lookup)({ ...w.subject, exe: w.subject.exe ?? '' });
      return {
        fits,
        why: `${subjectText(m, w.subject)} ${fits ? 'fits' : 'does not fit'} ${describeMatch(m)}`,
      };
    }
    case 'exe': {
      // the firewall matches the rule's cgroup; the executable (or Flatpak id) decided the placement
      const exe = subjectText(m, w.subject);
      const fits = w.exeFits(w.rules.indexOf(rule));
      const where = placementText(w.placement, w.cgroupOf);
      const here = w.placement.kind === 'rule' && w.placement.name === name;
      if (here)
        return {
          fits: true,
          why: fits
            ? `${exe} fits ${describeMatch(m)}; ${where}`
            : `${where}, though ${exe} no longer fits ${describeMatch(m)} (the placer moves it)`,
        };
      return {
        fits: false,
        why: fits
          ? `${exe} fits ${describeMatch(m)}, but ${where}: the firewall matches ${w.cgroupOf(name)}`
          : `${exe} does not fit ${describeMatch(m)}`,
      };
    }
  }
}

/** the first fitting program rule after `after` (the placer's next choice), or undefined */
function nextPlacement(w: Walk, after: number): number | undefined {
  for (let i = after + 1; i < w.rules.length; i++) if (w.exeFits(i)) return i;
  return undefined;
}

/** where the placer puts a process by its executable (failover past tunnels that are down) */
function placeByExe(w: Omit<Walk, 'placement'>, tunnelUp: TunnelUp): ExplainPlacement {
  let chosen: number | undefined;
  for (let i = 0; i < w.rules.length; i++) {
    if (!w.exeFits(i)) continue;
    chosen = i;
    const r = w.rules[i]!;
    const down =
      r.target !== 'direct' &&
      r.target !== 'block' &&
      r.fallback !== 'drop' &&
      !tunnelUp(r.target, ruleName(r, i));
    if (!(down && r.fallback === 'failover')) break;
  }
  return chosen === undefined
    ? { kind: 'outside' }
    : { kind: 'rule', name: ruleName(w.rules[chosen]!, chosen) };
}

function v6Adjust(route: Route, dest: Addr, ctx: ExplainContext, why: string): ExplainDecision {
  if (dest.family !== 6 || route === 'direct' || route === 'blocked' || ctx.ipv6 === undefined)
    return { route, why };
  if (ctx.ipv6 === 'block')
    return { route: 'blocked', why: `${why}; IPv6 to tunnels is dropped (ipv6: block)` };
  if (ctx.ipv6 === 'allow')
    return { route: 'direct', why: `${why}; IPv6 goes direct (ipv6: allow)` };
  return { route, why };
}

/** Walk `rules` for `subject` sending to `destination`, as the firewall does. */
export function explain(
  rules: readonly Rule[],
  subject: ExplainSubject,
  destination: ExplainDestination,
  ctx: ExplainContext,
  o: { cgroupRoot?: string | undefined } = {},
): Explanation {
  const dest = parseAddr(destination.addr);
  if (!dest) throw new Error(`explain: ${destination.addr} is not an IP address`);
  const root = o.cgroupRoot ?? 'awg';
  const cgroupOf = (r: string) => `${root}/${r}`;
  const lookup = ctx.lookup ?? {};
  const exeMatchers = rules.map((r) =>
    r.enabled !== false && r.match !== undefined && matchKind(r.match) === 'exe'
      ? compileSubjectMatch(r.match, lookup)
      : undefined,
  );
  const exeFits = (i: number) => {
    const f = exeMatchers[i];
    const m = rules[i]?.match;
    if (f === undefined || m === undefined) return false;
    if ('flatpak' in m) return f({ ...subject, exe: subject.exe ?? '' });
    return subject.exe !== undefined && f({ ...subject, exe: subject.exe });
  };
  const base = { rules, subject, exeFits, cgroupOf, lookup };
  const w: Walk = { ...base, placement: ctx.placement ?? placeByExe(base, ctx.tunnelUp) };
  const steps: ExplainStep[] = [];
  const limitNote =
    ctx.limit !== undefined ? ` (shaped by the runtime limit of pid ${ctx.limit})` : '';
  const decide = (step: ExplainStep | undefined, d: ExplainDecision): Explanation => {
    const adj = v6Adjust(d.route, dest, ctx, d.why);
    return {
      steps,
      decision: {
        ...(step ? { rule: step.rule } : {}),
        route: adj.route,
        why: adj.why + limitNote,
      },
    };
  };

  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const name = ruleName(rule, i);
    const common = { rule: name, index: i, enabled: rule.enabled !== false, target: rule.target };
    if (rule.enabled === false) {
      steps.push({
        ...common,
        program: { fits: 'n/a', why: 'disabled' },
        destination: { fits: 'n/a', why: 'disabled' },
        verdict: 'disabled',
      });
      continue;
    }
    const program = programPart(rule, name, w);
    const destPart = destinationPart(rule, name, i, dest, destination.name, ctx);
    const step: ExplainStep = { ...common, program, destination: destPart, verdict: 'no-fit' };
    steps.push(step);
    if (program.fits === false || destPart.fits === false) continue;
    const t = rule.target;
    const settle = (route: Route, why: string) => {
      step.verdict = 'decides';
      step.why = why;
      return decide(step, { route, why: `rules[${i}] ${name}: ${why}` });
    };
    if (t === 'block') return settle('blocked', 'target block');
    if (rule.fallback === 'drop') return settle('blocked', 'fallback drop');
    if (t === 'direct') return settle('direct', 'target direct');
    if (ctx.tunnelUp(t, name)) return settle(t, `tunnel ${t} is up`);
    // up, but this rule keeps its fallback until the network changes (daemon/sticky.ts)
    const down = ctx.tunnelUp(t)
      ? `tunnel ${t} is up, but this rule is held on its fallback (sticky)`
      : `tunnel ${t} is down`;
    if (rule.fallback === 'allow-direct') return settle('direct', `${down}; fallback allow-direct`);
    if (rule.fallback !== 'failover') return settle('blocked', `${down}; fallback block`);
    if (rule.match === undefined || matchKind(rule.match) === 'nft') {
      step.verdict = 'steps-aside';
      step.why = `${down}; failover: the firewall skips this rule`;
      continue;
    }
    const next = nextPlacement(w, i);
    if (next === undefined)
      return settle('blocked', `${down}; failover, but no later rule fits the program`);
    const nextName = ruleName(rules[next]!, next);
    step.verdict = 'steps-aside';
    step.why = `${down}; failover: the placer moves the process to rules[${next}] ${nextName}`;
    w.placement = { kind: 'rule', name: nextName };
  }

  if (w.placement.kind === 'exec') {
    const target = w.placement.target;
    const step: ExplainStep = {
      rule: `_exec-${target}`,
      index: -1,
      enabled: true,
      target,
      program: { fits: true, why: placementText(w.placement, cgroupOf) },
      destination: { fits: 'n/a', why: 'every destination' },
      verdict: 'decides',
    };
    steps.push(step);
    const d: ExplainDecision =
      target === 'direct'
        ? { route: 'direct', why: 'awg exec --direct' }
        : ctx.tunnelUp(target)
          ? { route: target, why: `awg exec --tunnel ${target}: tunnel ${target} is up` }
          : { route: 'blocked', why: `awg exec --tunnel ${target}: tunnel ${target} is down` };
    step.why = d.why;
    return decide(step, d);
  }

  const def = ctx.defaultRoute;
  const none = 'no rule fits';
  if (def === 'direct')
    return decide(undefined, { route: 'direct', why: `${none}; default direct` });
  return decide(
    undefined,
    ctx.tunnelUp(def)
      ? { route: def, why: `${none}; default ${def}, tunnel ${def} is up` }
      : { route: 'blocked', why: `${none}; default ${def}, tunnel ${def} is down` },
  );
}
