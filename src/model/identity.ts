/** Stable ids for resources, derived from identity fields only. Pure. */
import type { AddressSpec, ResourceKind, RouteSpec, RuleSpec } from './resources.js';

export const ids = {
  link: (name: string) => `link/${name}`,
  address: (a: Pick<AddressSpec, 'link' | 'cidr'>) => `address/${a.link}/${a.cidr}`,
  route: (r: Pick<RouteSpec, 'family' | 'table' | 'dst' | 'metric'>) =>
    `route/v${r.family}/table-${r.table}/${r.dst}/metric-${r.metric}`,
  rule: (r: Pick<RuleSpec, 'family' | 'priority'>) => `rule/v${r.family}/pref-${r.priority}`,
  firewall: (table: string) => `firewall/inet/${table}`,
  sysctl: (key: string) => `sysctl/${key}`,
  dns: (scope: string) => `dns/${scope}`,
  cgroup: (path: string) => `cgroup/${path}`,
  service: (name: string) => `service/${name}`,
  engine: (tunnel: string) => `engine/${tunnel}`,
  shaper: (s: { device: string; direction: 'egress' | 'ingress' }) =>
    `shaper/${s.device}/${s.direction}`,
} as const;

/**
 * Fields whose change cannot be applied in place: the object must be deleted and created
 * again (`replace`). Everything else changes with `update`.
 */
export const REPLACE_ON: Record<ResourceKind, readonly string[]> = {
  link: ['kind', 'name'],
  address: ['link', 'cidr', 'family'],
  route: ['family', 'table', 'dst', 'metric'],
  // the kernel has no "change rule": any difference is delete + add
  rule: [
    'family',
    'priority',
    'fwmark',
    'fwmask',
    'iif',
    'table',
    'action',
    'suppressPrefixLength',
    'invert',
    'protocol',
  ],
  firewall: ['family', 'table'],
  sysctl: ['key'],
  dns: ['scope'],
  cgroup: ['path'],
  service: ['name'],
  // another host (embedded, kernel, an external program) is another engine
  engine: ['tunnel', 'type', 'link', 'engine'],
  // the driver rebuilds a device's tree on any change; another ifb is another tree
  shaper: ['device', 'direction', 'ifb'],
};
