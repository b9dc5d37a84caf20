/**
 * Test double: a complete in-memory DriverSet (same contracts as the real drivers) for loop
 * tests. Excluded from the build (tsconfig.build.json); production code never imports it.
 */
import { ids } from '../model/identity.js';
import type { ResourceKind, SpecByKind } from '../model/resources.js';
import type { DriverSet } from './driver.js';
import { FakeDriver } from './driver.fake.js';
import { FakeRouteDriver } from './route/driver.fake.js';
import { FakeShaperDriver } from './shaper/driver.fake.js';

const ID_OF: { [K in ResourceKind]: (s: SpecByKind[K]) => string } = {
  link: (s) => ids.link(s.name),
  address: (s) => ids.address(s),
  route: (s) => ids.route(s),
  rule: (s) => ids.rule(s),
  firewall: (s) => ids.firewall(s.table),
  sysctl: (s) => ids.sysctl(s.key),
  dns: (s) => ids.dns(s.scope),
  cgroup: (s) => ids.cgroup(s.path),
  service: (s) => ids.service(s.name),
  engine: (s) => ids.engine(s.tunnel),
  shaper: (s) => ids.shaper(s),
};

export type FakeDriverSet = { [K in Exclude<ResourceKind, 'route' | 'shaper'>]: FakeDriver<K> } & {
  route: FakeRouteDriver;
  shaper: FakeShaperDriver;
};

export function createFakeDriverSet(): FakeDriverSet & DriverSet {
  const make = <K extends ResourceKind>(k: K) =>
    new FakeDriver<K>(k, ID_OF[k] as (s: SpecByKind[K]) => string);
  return {
    sysctl: make('sysctl'),
    cgroup: make('cgroup'),
    firewall: make('firewall'),
    link: make('link'),
    shaper: new FakeShaperDriver(),
    address: make('address'),
    engine: make('engine'),
    route: new FakeRouteDriver(),
    rule: make('rule'),
    dns: make('dns'),
    service: make('service'),
  };
}
