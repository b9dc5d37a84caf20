import { describe, expect, it } from 'vitest';
import { resolveExecCgroup, type AppliedView } from '../../../src/procs/exec-target.js';
import type { AnyResource } from '../../../src/model/resources.js';

const cg = (path: string) =>
  ({ kind: 'cgroup', id: `cgroup/${path}`, deps: [], spec: { path } }) as unknown as AnyResource;
const engine = (tunnel: string) =>
  ({
    kind: 'engine',
    id: `engine/${tunnel}`,
    deps: [],
    spec: { tunnel, type: 'wireguard' },
  }) as unknown as AnyResource;
const applied = (resources: AnyResource[]): AppliedView => ({
  claims: { cgroupRoot: 'awg' },
  resources,
});

describe('awg exec target cgroup', () => {
  const full = applied([
    cg('awg'),
    cg('awg/ff'),
    cg('awg/_exec-vpn'),
    cg('awg/_exec-direct'),
    engine('vpn'),
    engine('px'),
  ]);
  it('maps --rule, --tunnel and --direct', () => {
    expect(resolveExecCgroup(full, { rule: 'ff' })).toBe('awg/ff');
    expect(resolveExecCgroup(full, { tunnel: 'vpn' })).toBe('awg/_exec-vpn');
    expect(resolveExecCgroup(full, { direct: true })).toBe('awg/_exec-direct');
  });
  it('errors clearly: not applied, unknown rule, unknown tunnel, model without exec cgroups', () => {
    expect(() => resolveExecCgroup(undefined, { tunnel: 'vpn' })).toThrow(/awg is not applied/);
    expect(() => resolveExecCgroup(full, { rule: 'nope' })).toThrow(
      /no enabled rule named "nope".*rules: ff/,
    );
    expect(() => resolveExecCgroup(full, { rule: '_exec-vpn' })).not.toThrow();
    expect(() => resolveExecCgroup(full, { tunnel: 'work' })).toThrow(
      /unknown tunnel "work" \(applied tunnels: vpn, px\)/,
    );
    expect(() => resolveExecCgroup(applied([]), { tunnel: 'vpn' })).toThrow(/has no tunnels/);
    expect(() => resolveExecCgroup(applied([cg('awg'), engine('px')]), { tunnel: 'px' })).toThrow(
      /no cgroup awg\/_exec-px/,
    );
  });
});
