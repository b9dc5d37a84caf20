/**
 * Bandwidth limits → shaping classes and the shaper resources that carry them (docs/limits.md).
 *
 * A limited group (a rule with `limit:`, or a process limited at run time) is a class n in
 * 1..32. Its packets carry skb priority `1:<minor>` (set by the firewall; HTB sends a packet
 * whose priority names one of its leaf classes straight to it), and its connections are
 * source-NATed into a range of local ports of its own, so that replies can be classified at
 * ingress by destination port (this kernel has no connmark action to restore a mark there).
 * The ranges are 32 × 128 ports in 61440-65535, above Linux's default ephemeral range
 * (32768-60999).
 *
 * When any class or tunnel limit exists, every TUN of ours and every uplink device (the
 * host's default routes) gets a shaper per direction with every class, so a group is shaped
 * wherever its traffic leaves (its tunnel, or direct while that tunnel is down). Pure.
 */
import { createHash } from 'node:crypto';
import { isWgLike, linkName, type Config } from '../config/schema.js';
import { MAX_LIMITS, rateOf, roundRate, SHAPE_PORT_FIRST, type Limit } from '../config/rate.js';
import { AwgError } from '../errors.js';
import { ids } from './identity.js';
import { ruleName } from './match.js';
import type { ShapeClass } from './policy.js';
import type { AnyResource, ShaperClass, ShaperSpec } from './resources.js';

export const SHAPE_PORT_BASE = SHAPE_PORT_FIRST;
export const SHAPE_PORTS_PER_CLASS = 128;
export const MAX_SHAPE_CLASSES = MAX_LIMITS;
/** the u32 mask that selects one class's port range (128 ports, aligned) */
export const SHAPE_PORT_MASK = 0xffff & ~(SHAPE_PORTS_PER_CLASS - 1);
/** HTB minor of a class: n + 0x10, clear of the tunnel limit's parent 1:1 and default 1:2 */
export const CLASS_MINOR_BASE = 0x10;
export const TOTAL_MINOR = 1;
export const REST_MINOR = 2;
/** the link name prefix of our ifbs */
export const IFB_PREFIX = 'awgq-';

export { formatRate } from '../config/rate.js';

/** A process limited at run time (`awg limit PID`), placed in a cgroup of its own. */
export interface RuntimeLimit {
  pid: number;
  /** its group below the cgroup root, e.g. `awg/browser/_limit-1234` */
  group: string;
  /** bit/s */
  upload?: number;
  /** bit/s */
  download?: number;
}

export function classPorts(n: number): [number, number] {
  const lo = SHAPE_PORT_BASE + (n - 1) * SHAPE_PORTS_PER_CLASS;
  return [lo, lo + SHAPE_PORTS_PER_CLASS - 1];
}

export function classMinor(n: number): number {
  return CLASS_MINOR_BASE + n;
}

/** the skb priority / HTB classid of class n, as tc and nft write it (`1:11`) */
export function classHandle(n: number): string {
  return `1:${classMinor(n).toString(16)}`;
}

/** `awgq-<7 hex>`: an ifb of ours for one device and direction (15 bytes fit IFNAMSIZ) */
export function ifbName(device: string, direction: 'egress' | 'ingress'): string {
  return (
    IFB_PREFIX + createHash('sha256').update(`${device}/${direction}`).digest('hex').slice(0, 7)
  );
}

/** One class with both directions' rates (bit/s; absent: not limited that way). */
export interface LimitClass {
  n: number;
  /** `rule/<name>` or `pid/<pid>` */
  name: string;
  group: string;
  upload?: number;
  download?: number;
  runtime?: true;
}

/**
 * Classes in order: the enabled rules' limits (config order), then the runtime limits (pid
 * order). More than MAX_SHAPE_CLASSES is an invalid-config error naming the ones left out.
 */
export function shapeClasses(
  c: Config,
  cgroupRoot: string,
  runtime: readonly RuntimeLimit[] = [],
): LimitClass[] {
  const out: LimitClass[] = [];
  c.rules.forEach((rule, i) => {
    if (!rule.enabled || !rule.limit) return;
    const name = ruleName(rule, i);
    out.push({
      n: out.length + 1,
      name: `rule/${name}`,
      group: `${cgroupRoot}/${name}`,
      ...rates(rule.limit),
    });
  });
  for (const l of [...runtime].sort((a, b) => a.pid - b.pid)) {
    if (l.upload === undefined && l.download === undefined) continue;
    out.push({
      n: out.length + 1,
      name: `pid/${l.pid}`,
      group: l.group,
      ...(l.upload !== undefined ? { upload: roundRate(l.upload) } : {}),
      ...(l.download !== undefined ? { download: roundRate(l.download) } : {}),
      runtime: true,
    });
  }
  if (out.length > MAX_SHAPE_CLASSES)
    throw new AwgError(
      'invalid-config',
      `at most ${MAX_SHAPE_CLASSES} limits can be in force at once; ${out.length} are asked for (beyond the limit: ${out
        .slice(MAX_SHAPE_CLASSES)
        .map((x) => x.name)
        .join(', ')})`,
    );
  return out;
}

function rates(l: Limit): { upload?: number; download?: number } {
  return {
    ...(l.upload !== undefined ? { upload: rateOf(l.upload) } : {}),
    ...(l.download !== undefined ? { download: rateOf(l.download) } : {}),
  };
}

/** the firewall's view of the classes */
export function policyClasses(classes: readonly LimitClass[]): ShapeClass[] {
  return classes.map((k) => ({
    n: k.n,
    name: k.name,
    group: k.group,
    ports: classPorts(k.n),
    ...(k.runtime ? { runtime: true as const } : {}),
  }));
}

/**
 * The shaper resources (and their ifb links) for the classes and the tunnels' own limits.
 * `uplinks`: the host's default-route devices. Only directions with something to shape get
 * a shaper.
 */
export function shaperResources(
  c: Config,
  classes: readonly LimitClass[],
  uplinks: readonly string[],
): AnyResource[] {
  const out: AnyResource[] = [];
  const of = (dir: 'egress' | 'ingress'): ShaperClass[] =>
    classes.flatMap((k) => {
      const rate = dir === 'egress' ? k.upload : k.download;
      return rate === undefined ? [] : [{ n: k.n, name: k.name, rate, ports: classPorts(k.n) }];
    });
  const byDir = { egress: of('egress'), ingress: of('ingress') };
  const ifbs = new Set<string>();
  const shaper = (
    device: string,
    direction: 'egress' | 'ingress',
    opts: { ours: boolean; total?: number | undefined },
  ) => {
    // under a tunnel limit no class may exceed it (its HTB class's rate and ceiling)
    const total = opts.total;
    const cls = byDir[direction].map((k) =>
      total !== undefined && k.rate > total ? { ...k, rate: total } : k,
    );
    if (!cls.length && total === undefined) return;
    const ifb = opts.ours && direction === 'egress' ? undefined : ifbName(device, direction);
    const deps = opts.ours ? [ids.link(device)] : [];
    if (ifb !== undefined) {
      deps.push(ids.link(ifb));
      if (!ifbs.has(ifb)) {
        ifbs.add(ifb);
        out.push({
          kind: 'link',
          id: ids.link(ifb),
          deps: [],
          spec: { name: ifb, kind: 'ifb', mtu: 1500, up: true },
        });
      }
    }
    const spec: ShaperSpec = {
      device,
      direction,
      ...(ifb !== undefined ? { ifb } : {}),
      ...(opts.total !== undefined ? { total: opts.total } : {}),
      classes: cls,
    };
    out.push({ kind: 'shaper', id: ids.shaper(spec), deps, spec });
  };
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (!isWgLike(t)) continue;
    const total = t.limit ? rates(t.limit) : {};
    shaper(linkName(name), 'egress', { ours: true, total: total.upload });
    shaper(linkName(name), 'ingress', { ours: true, total: total.download });
  }
  for (const dev of [...new Set(uplinks)].sort()) {
    if (dev === 'lo') continue;
    shaper(dev, 'egress', { ours: false });
    shaper(dev, 'ingress', { ours: false });
  }
  return out;
}
