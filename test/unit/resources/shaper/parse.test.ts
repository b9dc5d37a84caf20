/**
 * The shaper parser on tc listings captured on Linux 6.1 / iproute2 6.1 (test/fixtures/linux/shaper:
 * the four trees render.ts builds for a TUN `awg-t1` with a tunnel limit and an uplink `va`),
 * and the damage and conflicts it must find when parts of them are gone or foreign.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ShaperSpec } from '../../../../src/model/resources.js';
import { classPorts, ifbName } from '../../../../src/model/shaping.js';
import { parseLinkJson } from '../../../../src/resources/link/parse.js';
import {
  observeShapers,
  parseClassText,
  parseFilterJson,
  parseQdiscJson,
  parseTcRate,
  type LinkView,
  type TcClass,
  type TcFilter,
  type TcSnapshot,
} from '../../../../src/resources/shaper/parse.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/shaper/${f}`, import.meta.url), 'utf8');

const T = 'awg-t1';
const TI = ifbName(T, 'ingress');
const VE = ifbName('va', 'egress');
const VI = ifbName('va', 'ingress');
const cls = (n: number, rate: number) => ({ n, name: `rule/r${n}`, rate, ports: classPorts(n) });
const names = { '1': 'rule/r1', '2': 'rule/r2' };
/** what the fixtures were made from */
const SPECS: ShaperSpec[] = [
  {
    device: T,
    direction: 'egress',
    total: 50_000_000,
    classes: [cls(1, 20_000_000), cls(2, 5_000_000)],
  },
  { device: T, direction: 'ingress', ifb: TI, total: 50_000_000, classes: [cls(1, 20_000_000)] },
  { device: 'va', direction: 'egress', ifb: VE, classes: [cls(1, 20_000_000), cls(2, 5_000_000)] },
  { device: 'va', direction: 'ingress', ifb: VI, classes: [cls(1, 20_000_000)] },
];

function links(): LinkView {
  const text = fx('link.json');
  const p = parseLinkJson(text, 'awg-');
  return {
    all: (JSON.parse(text) as { ifname: string }[]).map((l) => l.ifname),
    tuns: new Set(p.owned.filter((l) => l.spec.kind !== 'ifb').map((l) => l.spec.name)),
    ifbs: new Set(p.owned.filter((l) => l.spec.kind === 'ifb').map((l) => l.spec.name)),
  };
}

function snapshot(): {
  qdiscs: TcSnapshot['qdiscs'];
  classes: Map<string, TcClass[]>;
  filters: Map<string, TcFilter[]>;
} {
  const classes = new Map<string, TcClass[]>();
  for (const d of [T, TI, VE, VI]) classes.set(d, parseClassText(fx(`class-${d}.txt`)));
  const filters = new Map<string, TcFilter[]>();
  for (const d of [T, 'va'])
    for (const s of ['egress', 'ingress'])
      filters.set(`${d}/${s}`, parseFilterJson(fx(`filter-${d}-${s}.json`)));
  for (const d of [TI, VE, VI]) filters.set(`${d}/root`, parseFilterJson(fx(`filter-${d}.json`)));
  return { qdiscs: parseQdiscJson(fx('qdisc.json')), classes, filters };
}

describe('tc listings', () => {
  it('rates as tc prints them', () => {
    expect(parseTcRate('20Mbit')).toBe(20_000_000);
    expect(parseTcRate('1235Kbit')).toBe(1_235_000);
    expect(parseTcRate('123456bit')).toBe(123_456);
    expect(parseTcRate('100Gbit')).toBe(100_000_000_000);
    expect(parseTcRate('20Mibit')).toBeUndefined();
  });

  it('HTB classes from the text listing (iproute2 6.1 has no JSON for them)', () => {
    expect(parseClassText(fx(`class-${T}.txt`))).toEqual([
      { classid: '1:11', parent: '1:1', leaf: '11:', rate: 20_000_000, ceil: 20_000_000 },
      { classid: '1:1', rate: 50_000_000, ceil: 50_000_000 },
      { classid: '1:2', parent: '1:1', leaf: '2:', rate: 25_000_000, ceil: 50_000_000 },
      { classid: '1:12', parent: '1:1', leaf: '12:', rate: 5_000_000, ceil: 5_000_000 },
    ]);
  });

  it('filters: u32 nodes only, with their key, class, redirect and cookie', () => {
    const f = parseFilterJson(fx('filter-va-egress.json'));
    expect(f).toHaveLength(4);
    expect(f[0]).toEqual({
      pref: 0xa702,
      protocol: 'ip',
      match: { value: 0xf0000000, mask: 0xff800000, off: 20 },
      redirect: VE,
      cookie: Buffer.from('awg:managed').toString('hex'),
    });
    expect(parseFilterJson(fx(`filter-${VI}.json`))[1]).toMatchObject({
      protocol: 'ipv6',
      match: { value: 61440, mask: 0xff80, off: 40 },
      flowid: '1:11',
    });
  });
});

describe('observeShapers', () => {
  it('reads back exactly the specs the trees were built from', () => {
    const o = observeShapers(snapshot(), links(), names);
    expect(o.conflicts).toEqual([]);
    expect(o.specs).toEqual(SPECS);
  });

  it('a class without a recorded name is class-<n> (a difference, so the record is rewritten)', () => {
    expect(observeShapers(snapshot(), links(), {}).specs[2]!.classes[0]!.name).toBe('class-1');
  });

  it('a deleted class, leaf queue or filter is damage', () => {
    const s = snapshot();
    s.classes.set(
      VE,
      s.classes.get(VE)!.filter((c) => c.classid !== '1:12'),
    );
    s.qdiscs = s.qdiscs.filter((q) => !(q.dev === T && q.parent === '1:11'));
    s.filters.set(
      `${VI}/root`,
      s.filters.get(`${VI}/root`)!.filter((f) => f.protocol !== 'ipv6'),
    );
    s.filters.set('va/ingress', s.filters.get('va/ingress')!.slice(1));
    const o = observeShapers(s, links(), names);
    const by = (d: string, dir: string) =>
      o.specs.find((x) => x.device === d && x.direction === dir)!;
    expect(by(T, 'egress').damage).toEqual([
      'awg-t1: class 1:11 has no queue, not its bfifo of 71866 bytes',
    ]);
    expect(by('va', 'egress').classes.map((c) => c.n)).toEqual([1]);
    expect(by('va', 'egress').damage).toEqual([
      'va: egress filter pref 42756 ip belongs to no class',
      'va: egress filter pref 42757 ipv6 belongs to no class',
    ]);
    expect(by('va', 'ingress').damage).toEqual([
      `${VI}: no ipv6 port filter for class 1`,
      `va: no ingress ip redirect of class 1's ports to ${VI}`,
    ]);
    expect(by(T, 'ingress').damage).toBeUndefined();
  });

  it('a deleted HTB leaves the redirects as damage; a deleted clsact leaves the HTB as damage', () => {
    const s = snapshot();
    s.qdiscs = s.qdiscs.filter((q) => q.dev !== VE && !(q.dev === 'va' && q.kind === 'clsact'));
    s.classes.delete(VE);
    const o = observeShapers(s, links(), names);
    expect(o.conflicts).toEqual([]);
    const ve = o.specs.find((x) => x.device === 'va' && x.direction === 'egress');
    // nothing of va's egress tree is left: no spec, so the plan creates it again
    expect(ve).toBeUndefined();
    const vi = o.specs.find((x) => x.device === 'va' && x.direction === 'ingress')!;
    expect(vi.damage).toEqual([
      `va: no ingress ip redirect of class 1's ports to ${VI}`,
      `va: no ingress ipv6 redirect of class 1's ports to ${VI}`,
    ]);
  });

  it('a clsact with a filter that is not ours, an ingress qdisc, an empty clsact of no ifb of ours: conflicts', () => {
    const s = snapshot();
    s.filters.set('va/egress', [...s.filters.get('va/egress')!, { pref: 1, protocol: 'ip' }]);
    s.qdiscs.push(
      { kind: 'ingress', handle: 'ffff:', dev: 'lo', parent: 'ffff:fff1', root: false },
      { kind: 'clsact', handle: 'ffff:', dev: 'eth9', parent: 'ffff:fff1', root: false },
    );
    const l = links();
    const o = observeShapers(s, { ...l, all: [...l.all, 'eth9'] }, names);
    expect(o.conflicts).toEqual([
      { device: 'eth9', reason: 'eth9 has a clsact qdisc awg did not create' },
      { device: 'lo', reason: 'lo has an ingress qdisc awg did not create' },
      { device: 'va', reason: 'va has a clsact qdisc with 1 filter awg did not create' },
    ]);
    // our own filters on the shared clsact are still seen (so `down` removes exactly them)
    expect(o.specs.filter((x) => x.device === 'va')).toHaveLength(2);
  });

  it('an empty clsact on a device with an ifb of ours is ours (its filters were deleted)', () => {
    const s = snapshot();
    s.filters.set('va/egress', []);
    s.filters.set('va/ingress', []);
    const o = observeShapers(s, links(), names);
    expect(o.conflicts).toEqual([]);
    expect(o.specs.find((x) => x.device === 'va' && x.direction === 'egress')!.damage).toHaveLength(
      4,
    );
  });
});
