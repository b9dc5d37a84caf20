/**
 * tc's listings → the shapers we own, as ShaperSpecs (render.ts builds the same trees). Pure.
 *
 * Inputs: `tc -j qdisc show` (every device), `tc class show dev X` (iproute2 6.1 prints HTB
 * classes as text even with `-j`), `tc -j filter show dev X ingress|egress` (a clsact's two
 * sides) and `tc -j filter show dev IFB` (an ingress ifb's port filters).
 *
 * Ownership: an HTB at the root of one of our TUNs or of one of our ifbs (`awgq-…`, the link
 * alias marker) is ours. A clsact is ours when every filter on it carries our cookie, or it
 * has none while an ifb of ours for that device exists (our filters were deleted: drift). A
 * clsact with another filter, or with none and no ifb of ours, and an `ingress` qdisc, are the
 * user's: a conflict for both directions of that device, never touched.
 *
 * A spec is rebuilt from what is there; whatever of the tree is missing or not as render.ts
 * builds it is listed in `damage`, so the plan sees a difference and the driver rebuilds it.
 */
import type { ShaperClass, ShaperSpec } from '../../model/resources.js';
import {
  classPorts,
  CLASS_MINOR_BASE,
  ifbName,
  MAX_SHAPE_CLASSES,
  REST_MINOR,
  SHAPE_PORT_MASK,
  TOTAL_MINOR,
} from '../../model/shaping.js';
import {
  hex,
  leafLimit,
  PREF_ALL,
  PREF_FIRST,
  PREF_LAST,
  prefOf,
  SHAPER_COOKIE,
} from './render.js';

export interface TcQdisc {
  kind: string;
  /** `1:`, `ffff:` */
  handle: string;
  dev: string;
  /** absent at the root */
  parent?: string;
  root: boolean;
  /** htb: the default minor (`0`, `0x2`); bfifo: the limit */
  default?: number;
  limit?: number;
}

export interface TcClass {
  /** `1:11` */
  classid: string;
  /** `1:1`, or undefined at the root */
  parent?: string;
  /** the leaf qdisc's handle (`11:`) */
  leaf?: string;
  /** bit/s */
  rate: number;
  ceil: number;
}

export interface TcFilter {
  pref: number;
  protocol: string;
  /** u32: the one key (value and mask as a 32-bit word at `off`) */
  match?: { value: number; mask: number; off: number };
  /** the class a filter on an HTB sends to (`1:11`) */
  flowid?: string;
  /** mirred redirect target */
  redirect?: string;
  cookie?: string;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function jsonArray(text: string, what: string): Json[] {
  const t = text.trim();
  if (!t) return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error(`${what}: expected a JSON array`);
  return v.filter(isObj);
}

/** `tc -j qdisc show [dev X]` (`dev` names the device when the listing has none) */
export function parseQdiscJson(text: string, dev?: string): TcQdisc[] {
  return jsonArray(text, 'tc -j qdisc show').map((q) => {
    const o = isObj(q.options) ? q.options : {};
    const out: TcQdisc = {
      kind: String(q.kind ?? ''),
      handle: String(q.handle ?? ''),
      dev: typeof q.dev === 'string' ? q.dev : (dev ?? ''),
      root: q.root === true,
    };
    if (typeof q.parent === 'string') out.parent = q.parent;
    if (typeof o.default === 'string')
      out.default = Number.parseInt(o.default, o.default.startsWith('0x') ? 16 : 10);
    if (typeof o.limit === 'number') out.limit = o.limit;
    return out;
  });
}

const UNIT: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** `20Mbit` → 20000000 (tc prints decimal units; `Kibit`-style only with -iec, which we never pass) */
export function parseTcRate(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)bit$/.exec(s);
  return m ? Math.round(Number(m[1]) * UNIT[m[2]!]!) : undefined;
}

/** `tc class show dev X`: HTB classes, one per line */
export function parseClassText(text: string): TcClass[] {
  const out: TcClass[] = [];
  for (const line of text.split('\n')) {
    const m = /^class htb (\S+) (?:root|parent (\S+))(?: leaf (\S+))?.* rate (\S+) ceil (\S+)/.exec(
      line.trim(),
    );
    if (!m) continue;
    const rate = parseTcRate(m[4]!);
    const ceil = parseTcRate(m[5]!);
    if (rate === undefined || ceil === undefined) continue;
    out.push({
      classid: m[1]!,
      ...(m[2] !== undefined ? { parent: m[2] } : {}),
      ...(m[3] !== undefined ? { leaf: m[3] } : {}),
      rate,
      ceil,
    });
  }
  return out;
}

/**
 * `tc -j filter show dev X [ingress|egress]`: the filters (u32 nodes; a u32 hash table's
 * header and a classifier's own line without options are not filters).
 */
export function parseFilterJson(text: string): TcFilter[] {
  const out: TcFilter[] = [];
  for (const f of jsonArray(text, 'tc -j filter show')) {
    const o = f.options;
    if (!isObj(o)) continue;
    if (f.kind === 'u32' && o.ht_divisor !== undefined) continue;
    const r: TcFilter = { pref: Number(f.pref), protocol: String(f.protocol ?? '') };
    const m = o.match;
    if (isObj(m) && typeof m.value === 'string' && typeof m.mask === 'string')
      r.match = {
        value: Number.parseInt(m.value || '0', 16) >>> 0,
        mask: Number.parseInt(m.mask || '0', 16) >>> 0,
        off: Number(m.off ?? 0),
      };
    if (typeof o.flowid === 'string') r.flowid = o.flowid;
    const acts = Array.isArray(o.actions) ? o.actions.filter(isObj) : [];
    for (const a of acts) {
      if (a.kind === 'mirred' && typeof a.to_dev === 'string') r.redirect = a.to_dev;
      if (typeof a.cookie === 'string') r.cookie = a.cookie;
    }
    out.push(r);
  }
  return out;
}

/** the u32 key render.ts writes for class n's ports (`match ip|ip6 sport|dport P 0xff80`) */
export function portKey(
  family: 4 | 6,
  dir: 'sport' | 'dport',
  ports: [number, number],
): { value: number; mask: number; off: number } {
  const off = family === 4 ? 20 : 40;
  return dir === 'sport'
    ? { value: (ports[0] * 0x10000) >>> 0, mask: (SHAPE_PORT_MASK * 0x10000) >>> 0, off }
    : { value: ports[0], mask: SHAPE_PORT_MASK, off };
}

const PROTOCOL = { 4: 'ip', 6: 'ipv6' } as const;

function sameKey(a: TcFilter['match'], b: { value: number; mask: number; off: number }): boolean {
  return a !== undefined && a.value === b.value && a.mask === b.mask && a.off === b.off;
}

export function isOurs(f: TcFilter): boolean {
  return f.cookie === SHAPER_COOKIE;
}

/** What tc shows on this host, as the driver reads it. */
export interface TcSnapshot {
  /** every device's qdiscs */
  qdiscs: TcQdisc[];
  /** HTB classes by device (our TUNs and ifbs that carry an HTB) */
  classes: ReadonlyMap<string, TcClass[]>;
  /** filters by `<dev>/<egress|ingress>` (a clsact's sides) and `<dev>/root` (an ifb's HTB) */
  filters: ReadonlyMap<string, TcFilter[]>;
}

/** Links as the link driver classifies them. */
export interface LinkView {
  /** every device in the namespace */
  all: readonly string[];
  /** our TUNs (and kernel WireGuard links) */
  tuns: ReadonlySet<string>;
  /** our ifbs */
  ifbs: ReadonlySet<string>;
}

export interface ClsactState {
  exists: boolean;
  /** ours (see the header): we may add to it and delete it once it holds nothing */
  ours: boolean;
  /** our filters' preferences per side */
  prefs: { egress: number[]; ingress: number[] };
  /** why it is not ours (a conflict) */
  foreign?: string;
}

/** The clsact of a device: whether it exists, is ours, and which filters of ours it holds. */
export function clsactOf(snap: TcSnapshot, links: LinkView, dev: string): ClsactState {
  const qd = snap.qdiscs.filter((q) => q.dev === dev);
  const prefs = { egress: [] as number[], ingress: [] as number[] };
  if (qd.some((q) => q.kind === 'ingress'))
    return {
      exists: false,
      ours: false,
      prefs,
      foreign: `${dev} has an ingress qdisc awg did not create`,
    };
  if (!qd.some((q) => q.kind === 'clsact')) return { exists: false, ours: false, prefs };
  let foreign = 0;
  for (const side of ['egress', 'ingress'] as const)
    for (const f of snap.filters.get(`${dev}/${side}`) ?? []) {
      if (isOurs(f) && f.pref >= PREF_FIRST && f.pref <= PREF_LAST) {
        if (!prefs[side].includes(f.pref)) prefs[side].push(f.pref);
      } else foreign++;
    }
  const ourIfb = (['egress', 'ingress'] as const).some((d) => links.ifbs.has(ifbName(dev, d)));
  const anyOurs = prefs.egress.length + prefs.ingress.length > 0;
  if (foreign > 0)
    return {
      exists: true,
      ours: false,
      prefs,
      foreign: `${dev} has a clsact qdisc with ${foreign} filter${foreign > 1 ? 's' : ''} awg did not create`,
    };
  if (!anyOurs && !ourIfb)
    return {
      exists: true,
      ours: false,
      prefs,
      foreign: `${dev} has a clsact qdisc awg did not create`,
    };
  return { exists: true, ours: true, prefs };
}

/** the root HTB of a device, when it is one */
export function rootHtb(snap: TcSnapshot, dev: string): TcQdisc | undefined {
  return snap.qdiscs.find((q) => q.dev === dev && q.root && q.kind === 'htb' && q.handle === '1:');
}

export interface ObservedShapers {
  specs: ShaperSpec[];
  conflicts: { device: string; reason: string }[];
}

/**
 * Every shaper of ours the snapshot shows. `names`: the class names the driver recorded at
 * its last apply (tc keeps none); a class without one is `class-<n>`.
 */
export function observeShapers(
  snap: TcSnapshot,
  links: LinkView,
  names: Readonly<Record<string, string>> = {},
): ObservedShapers {
  const specs: ShaperSpec[] = [];
  const conflicts: ObservedShapers['conflicts'] = [];
  for (const dev of [...links.all].sort()) {
    if (links.ifbs.has(dev)) continue;
    const cls = clsactOf(snap, links, dev);
    if (cls.foreign !== undefined) conflicts.push({ device: dev, reason: cls.foreign });
    for (const direction of ['egress', 'ingress'] as const) {
      if (direction === 'egress' && links.tuns.has(dev)) {
        if (rootHtb(snap, dev)) specs.push(specOf(snap, { device: dev, direction }, names, cls));
        continue;
      }
      const ifb = ifbName(dev, direction);
      const ours = cls.ours ? cls.prefs[direction] : [];
      if ((links.ifbs.has(ifb) && rootHtb(snap, ifb)) || ours.length)
        specs.push(specOf(snap, { device: dev, direction, ifb }, names, cls));
    }
  }
  return { specs, conflicts };
}

function specOf(
  snap: TcSnapshot,
  at: { device: string; direction: 'egress' | 'ingress'; ifb?: string },
  names: Readonly<Record<string, string>>,
  cls: ClsactState,
): ShaperSpec {
  const dev = at.ifb ?? at.device;
  const damage: string[] = [];
  const htb = rootHtb(snap, dev);
  const classes = snap.classes.get(dev) ?? [];
  const leafOf = (minor: number) =>
    snap.qdiscs.find((q) => q.dev === dev && q.parent === `1:${hex(minor)}`);
  const byId = new Map(classes.map((c) => [c.classid, c]));
  const totalClass = byId.get(`1:${hex(TOTAL_MINOR)}`);
  const total = totalClass && totalClass.parent === undefined ? totalClass.rate : undefined;
  if (!htb) damage.push(`${dev} has no HTB of ours at its root`);
  else if ((htb.default ?? 0) !== (total !== undefined ? REST_MINOR : 0))
    damage.push(`${dev}: the HTB's default class is ${htb.default ?? 0}`);

  const checkLeaf = (minor: number, rate: number) => {
    const q = leafOf(minor);
    if (!q || q.kind !== 'bfifo' || q.limit !== leafLimit(rate, at.direction))
      damage.push(
        `${dev}: class 1:${hex(minor)} has ${q ? `a ${q.kind} queue${q.limit !== undefined ? ` of ${q.limit} bytes` : ''}` : 'no queue'}, not its bfifo of ${leafLimit(rate, at.direction)} bytes`,
      );
  };
  const parent = total !== undefined ? `1:${hex(TOTAL_MINOR)}` : undefined;
  if (total !== undefined) {
    if (totalClass!.ceil !== total) damage.push(`${dev}: class 1:1 has ceil ${totalClass!.ceil}`);
    const rest = byId.get(`1:${hex(REST_MINOR)}`);
    if (!rest || rest.parent !== parent || rest.ceil !== total)
      damage.push(`${dev}: the rest's class 1:${hex(REST_MINOR)} is missing or not below 1:1`);
    else checkLeaf(REST_MINOR, total);
  }

  const out: ShaperClass[] = [];
  const known = new Set<string>();
  if (totalClass) known.add(totalClass.classid);
  if (total !== undefined) known.add(`1:${hex(REST_MINOR)}`);
  for (const c of classes) {
    const minor = Number.parseInt(c.classid.split(':')[1] ?? '', 16);
    const n = minor - CLASS_MINOR_BASE;
    if (!c.classid.startsWith('1:') || !(n >= 1 && n <= MAX_SHAPE_CLASSES)) continue;
    known.add(c.classid);
    if (c.parent !== parent)
      damage.push(`${dev}: class ${c.classid} hangs below ${c.parent ?? 'the root'}`);
    if (c.ceil !== c.rate) damage.push(`${dev}: class ${c.classid} has ceil ${c.ceil}`);
    checkLeaf(minor, c.rate);
    out.push({ n, name: names[String(n)] ?? `class-${n}`, rate: c.rate, ports: classPorts(n) });
  }
  out.sort((a, b) => a.n - b.n);
  for (const c of classes)
    if (!known.has(c.classid)) damage.push(`${dev}: class ${c.classid} is not one of ours`);

  // ingress: the ifb's port filters send each class's ports to it
  if (at.direction === 'ingress') {
    const fs = snap.filters.get(`${dev}/root`) ?? [];
    const used = new Set<TcFilter>();
    for (const c of out)
      for (const f of [4, 6] as const) {
        const want = portKey(f, 'dport', c.ports);
        const hit = fs.find(
          (x) =>
            x.pref === prefOf(c.n, f, 'ingress') &&
            x.protocol === PROTOCOL[f] &&
            sameKey(x.match, want) &&
            x.flowid === `1:${hex(CLASS_MINOR_BASE + c.n)}`,
        );
        if (hit) used.add(hit);
        else damage.push(`${dev}: no ${PROTOCOL[f]} port filter for class ${c.n}`);
      }
    for (const x of fs)
      if (!used.has(x))
        damage.push(`${dev}: filter pref ${x.pref} ${x.protocol} is not one of ours`);
  }

  // the redirects on the device's clsact
  if (at.ifb !== undefined) {
    const side = (cls.ours ? snap.filters.get(`${at.device}/${at.direction}`) : undefined) ?? [];
    const fs = side.filter(isOurs);
    const used = new Set<TcFilter>();
    const dir = at.direction === 'egress' ? 'sport' : 'dport';
    if (at.direction === 'ingress' && total !== undefined) {
      const hit = fs.find(
        (x) =>
          x.pref === PREF_ALL &&
          x.protocol === 'all' &&
          sameKey(x.match, { value: 0, mask: 0, off: 0 }) &&
          x.redirect === at.ifb,
      );
      if (hit) used.add(hit);
      else damage.push(`${at.device}: nothing redirects its ingress to ${at.ifb}`);
    } else
      for (const c of out)
        for (const f of [4, 6] as const) {
          const hit = fs.find(
            (x) =>
              x.pref === prefOf(c.n, f, at.direction) &&
              x.protocol === PROTOCOL[f] &&
              sameKey(x.match, portKey(f, dir, c.ports)) &&
              x.redirect === at.ifb,
          );
          if (hit) used.add(hit);
          else
            damage.push(
              `${at.device}: no ${at.direction} ${PROTOCOL[f]} redirect of class ${c.n}'s ports to ${at.ifb}`,
            );
        }
    for (const x of fs)
      if (!used.has(x))
        damage.push(
          `${at.device}: ${at.direction} filter pref ${x.pref} ${x.protocol} belongs to no class`,
        );
  }

  return {
    device: at.device,
    direction: at.direction,
    ...(at.ifb !== undefined ? { ifb: at.ifb } : {}),
    ...(total !== undefined ? { total } : {}),
    classes: out,
    ...(damage.length ? { damage } : {}),
  };
}
