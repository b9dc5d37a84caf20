/**
 * Limits on macOS: the model's shapers (Linux's view: an HTB per device and direction, ifbs
 * for ingress; model/shaping.ts) folded into dummynet pipes and PF rules. Pure.
 *
 * - Every class n (a limited rule, a process limited at run time) gets a pipe per limited
 *   direction (platform/darwin/dnctl.ts dnPipeNumber(n, …)) at its rate, whatever device the
 *   model put it on: on macOS the flow router dials the class's connections from the class's
 *   own port range (dnctl.ts darwinClassPorts), and PF's dummynet rules match those ports on
 *   every interface (platform/darwin/pf-shaping.ts).
 * - A tunnel's own limit (the `total` of the shaper on its link) gets a pipe per direction in
 *   the tunnel slots (33 + the tunnel's place among the policy's tunnel links, sorted), which
 *   PF fills with everything on its utun; a limited rule's flows in it pass both pipes.
 * - The model's ifb links and per-device shapers are not realised (macOS has neither ifb nor
 *   HTB). What is realised: two shaper resources, `shaper/dummynet/egress` and
 *   `shaper/dummynet/ingress`, each listing its pipes as classes (slot n, name, rate; a
 *   class's ports are its macOS range, a tunnel's [0, 0]) — the dummynet driver
 *   (resources/shaper/darwin.ts) configures them; and the PF anchor's dummynet rules.
 * - dummynet's bandwidth is a C int: a rate above DN_MAX_BANDWIDTH (2147 Mbit/s) is set to
 *   it, with a warning.
 */
import type { DesiredModel } from '../../model/desired.js';
import { ids } from '../../model/identity.js';
import type { Resource, ShaperClass, ShaperSpec } from '../../model/resources.js';
import {
  DN_MAX_BANDWIDTH,
  DN_MAX_SLOT,
  DN_TUNNEL_SLOT_BASE,
  darwinClassPorts,
  dnPipeNumber,
  type Direction,
} from '../../platform/darwin/dnctl.js';
import type { PfShaping } from '../../platform/darwin/pf-shaping.js';

/** the device name of awg's dummynet shapers (ids `shaper/dummynet/<direction>`) */
export const DUMMYNET_DEVICE = 'dummynet';

export const DARWIN_LIMITS_WARNING =
  "limits on macOS: a limited rule's TCP connections are shaped as the flow router relays them (dummynet pipes, both directions), and a limited tunnel's utun carries everything into its pipes; a limited rule's UDP and the connections of processes running as root (the router does not see them) are not shaped";

export interface DarwinShaping {
  resources: Resource<'shaper'>[];
  /** the anchor's dummynet rules; absent: nothing to shape */
  pf?: PfShaping;
  warnings: string[];
}

export function realiseDarwinShaping(d: DesiredModel): DarwinShaping {
  const shapers = d.resources.filter((r): r is Resource<'shaper'> => r.kind === 'shaper');
  const warnings: string[] = [];
  if (!shapers.length) return { resources: [], warnings };
  const capped = (rate: number, what: string) => {
    if (rate <= DN_MAX_BANDWIDTH) return rate;
    warnings.push(
      `${what}: ${rate} bit/s is more than dummynet can pace (at most ${DN_MAX_BANDWIDTH} bit/s); it is shaped at ${DN_MAX_BANDWIDTH} bit/s`,
    );
    return DN_MAX_BANDWIDTH;
  };

  // classes: a rate per direction (the model gives each device the same classes)
  const rate = new Map<number, { name: string; egress?: number; ingress?: number }>();
  for (const s of shapers)
    for (const k of s.spec.classes) {
      const e = rate.get(k.n) ?? { name: k.name };
      e[s.spec.direction] = k.rate;
      rate.set(k.n, e);
    }
  // tunnels' own limits: the total of the shaper on a tunnel's link
  const links = [
    ...new Set((d.policy?.tunnels ?? []).flatMap((t) => (t.link ? [t.link] : []))),
  ].sort();
  const tunnelName = new Map(
    (d.policy?.tunnels ?? []).flatMap((t) => (t.link ? [[t.link, t.name] as const] : [])),
  );
  const totals = new Map<string, { egress?: number; ingress?: number }>();
  for (const s of shapers)
    if (s.spec.total !== undefined && links.includes(s.spec.device)) {
      const e = totals.get(s.spec.device) ?? {};
      e[s.spec.direction] = s.spec.total;
      totals.set(s.spec.device, e);
    }

  const byDir: Record<Direction, ShaperClass[]> = { egress: [], ingress: [] };
  const pf: PfShaping = { classes: [], tunnels: [] };
  for (const n of [...rate.keys()].sort((a, b) => a - b)) {
    const k = rate.get(n)!;
    const ports = darwinClassPorts(n);
    const c: PfShaping['classes'][number] = { n, name: k.name, ports };
    for (const dir of ['egress', 'ingress'] as const) {
      const r = k[dir];
      if (r === undefined) continue;
      byDir[dir].push({
        n,
        name: k.name,
        rate: capped(r, `${k.name} ${dir === 'egress' ? 'upload' : 'download'}`),
        ports,
      });
      c[dir === 'egress' ? 'up' : 'down'] = dnPipeNumber(n, dir);
    }
    pf.classes.push(c);
  }
  for (const [link, t] of [...totals].sort(([a], [b]) => a.localeCompare(b))) {
    const slot = DN_TUNNEL_SLOT_BASE + links.indexOf(link);
    const name = `tunnel/${tunnelName.get(link) ?? link}`;
    if (slot > DN_MAX_SLOT) {
      warnings.push(`${name}: more tunnels than dummynet slots; its limit is not applied`);
      continue;
    }
    const e: PfShaping['tunnels'][number] = { link };
    for (const dir of ['egress', 'ingress'] as const) {
      const r = t[dir];
      if (r === undefined) continue;
      byDir[dir].push({
        n: slot,
        name,
        rate: capped(r, `${name} ${dir === 'egress' ? 'upload' : 'download'}`),
        ports: [0, 0],
      });
      e[dir === 'egress' ? 'up' : 'down'] = dnPipeNumber(slot, dir);
    }
    pf.tunnels.push(e);
  }

  const resources: Resource<'shaper'>[] = [];
  for (const direction of ['egress', 'ingress'] as const) {
    if (!byDir[direction].length) continue;
    const spec: ShaperSpec = { device: DUMMYNET_DEVICE, direction, classes: byDir[direction] };
    resources.push({ kind: 'shaper', id: ids.shaper(spec), deps: [], spec });
  }
  if (!resources.length) return { resources, warnings };
  if (pf.classes.length) warnings.push(DARWIN_LIMITS_WARNING);
  return { resources, pf, warnings };
}
