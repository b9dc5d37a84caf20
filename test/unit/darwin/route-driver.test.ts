import { describe, expect, it } from 'vitest';
import type { Change } from '../../../src/model/change.js';
import { ids } from '../../../src/model/identity.js';
import type { DesiredState, RouteSpec } from '../../../src/model/resources.js';
import { createDarwinRouteDriver, ROUTE_STATE_KEY } from '../../../src/resources/route/darwin.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import { recordUtun } from '../../../src/platform/darwin/utun.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { ScriptedExec } from './fake-exec.js';
import { fixture } from './fixtures.js';
import { claims } from './helpers.js';

// Post-state: a real capture with 0/1 + 128.0/1 on utun2 and a host route to the server via en0.
const POST = fixture('routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt');
// Pre-state: the same capture without those three lines.
const PRE = POST.split('\n')
  .filter((l) => !/^(0\/1|128\.0\/1) /.test(l) && !/^192\.168\.1\.51 +192\.168\.1\.1 /.test(l))
  .join('\n');

const spec = (dst: string, extra: Partial<RouteSpec>): RouteSpec => ({
  family: 4,
  table: 52000,
  dst,
  type: 'unicast',
  metric: 0,
  protocol: 52,
  ...extra,
});
const WANT = [
  spec('0.0.0.0/1', { dev: 'awg-work' }),
  spec('128.0.0.0/1', { dev: 'awg-work' }),
  spec('192.168.1.51/32', { via: '192.168.1.1', dev: 'en0' }),
];
const create = (s: RouteSpec): Change<'route'> => ({
  kind: 'route',
  id: ids.route(s),
  action: 'create',
  after: s,
  reason: 'missing',
  cause: 'initial',
});
const desired = (specs: RouteSpec[]): DesiredState => ({
  resources: specs.map((s) => ({ kind: 'route', id: ids.route(s), spec: s, deps: [] })),
  warnings: [],
});

function setup(netstat: string, opts: { dryRun?: boolean } = {}) {
  const exec = new ScriptedExec(opts).on('netstat -rn', { stdout: netstat });
  const state = new MemoryStateStore();
  recordUtun(state, 'awg-work', { ifname: 'utun2', pid: 4242 });
  const ctx: ApplyContext = {
    exec,
    reporter: silentReporter,
    state,
    dryRun: opts.dryRun ?? false,
    claims,
  };
  return { exec, state, ctx, driver: createDarwinRouteDriver({ exec }) };
}

const ok = (line: string) => ({ stdout: `${line}\n` });

describe('darwin route driver', () => {
  it('adds split routes on the engine utun and the endpoint bypass; second apply is unchanged', async () => {
    const { exec, state, ctx, driver } = setup(PRE);
    exec
      .on(
        'route -n add -inet -net 0.0.0.0/1 -interface utun2',
        ok('add net 0.0.0.0/1: gateway utun2'),
      )
      .on(
        'route -n add -inet -net 128.0.0.0/1 -interface utun2',
        ok('add net 128.0.0.0/1: gateway utun2'),
      )
      .on(
        'route -n add -inet -host 192.168.1.51 192.168.1.1',
        ok('add host 192.168.1.51: gateway 192.168.1.1'),
      );
    expect((await driver.observe({ desired: desired(WANT), claims, state })).resources).toEqual([]);
    for (const s of WANT) expect(await driver.apply(create(s), ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'route -n add -inet -net 0.0.0.0/1 -interface utun2',
      'route -n add -inet -net 128.0.0.0/1 -interface utun2',
      'route -n add -inet -host 192.168.1.51 192.168.1.1',
    ]);
    expect(Object.keys(state.get<object>(ROUTE_STATE_KEY)!)).toHaveLength(3);

    exec.on('netstat -rn', { stdout: POST });
    for (const s of WANT) expect(await driver.apply(create(s), ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(3);
    const obs = await driver.observe({ desired: desired(WANT), claims, state });
    expect(obs.resources.map((r) => r.spec)).toEqual(WANT);
    expect(obs.foreign).toEqual([]);
    // en0's connected prefix (`192.168.1  link#11  UCS`); not its link-local one, nor the
    // gateway's /32 link route, nor ARP entries
    expect(obs.facts).toEqual({
      defaultRouteV4: { gateway: '192.168.1.1', interface: 'en0', onLink: ['192.168.1.0/24'] },
    });
  });

  it('a 0/1 that awg did not create is a conflict: reported, never touched', async () => {
    const { exec, state, ctx, driver } = setup(
      fixture('routes/netstat-nr-f-inet-0-1-utun0-link-gateway-wgtools.txt'),
    );
    const obs = await driver.observe({ desired: desired(WANT), claims, state });
    expect(obs.foreign).toEqual([
      {
        kind: 'route',
        id: ids.route(WANT[0]!),
        relation: 'conflict',
        description:
          'a route 0/1 via utun0 on utun0 (UScg) that awg did not create already covers 0.0.0.0/1',
      },
    ]);
    await expect(driver.apply(create(WANT[0]!), ctx)).rejects.toMatchObject({ kind: 'conflict' });
    expect(exec.mutations).toBe(0);
    expect(state.get(ROUTE_STATE_KEY)).toBeUndefined();
  });

  it('route exits 0 on failure: errors are read from its output and the record is rolled back', async () => {
    const { exec, state, ctx, driver } = setup(PRE);
    exec.on('route -n add -inet -net 0.0.0.0/1 -interface utun2', {
      stdout: 'add net 0.0.0.0/1: gateway utun2: Network is unreachable\n',
      stderr: 'route: writing to routing socket: Network is unreachable\n',
    });
    await expect(driver.apply(create(WANT[0]!), ctx)).rejects.toMatchObject({
      kind: 'driver',
      message: 'route add 0.0.0.0/1: Network is unreachable',
    });
    expect(state.get(ROUTE_STATE_KEY)).toEqual({});
    exec.on('route -n add -inet -net 0.0.0.0/1 -interface utun2', {
      stdout: 'add net 0.0.0.0/1: gateway utun2: File exists\n',
    });
    await expect(driver.apply(create(WANT[0]!), ctx)).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('deletes only recorded routes, naming the gateway; second delete is unchanged', async () => {
    const { exec, state, ctx, driver } = setup(POST);
    state.set(ROUTE_STATE_KEY, Object.fromEntries(WANT.map((s) => [ids.route(s), s])));
    exec.on(
      'route -n delete -inet -net 0.0.0.0/1 -interface utun2',
      ok('delete net 0.0.0.0/1: gateway utun2'),
    );
    const del: Change<'route'> = {
      kind: 'route',
      id: ids.route(WANT[0]!),
      action: 'delete',
      before: WANT[0]!,
      reason: 'not desired',
      cause: 'config',
    };
    expect(await driver.apply(del, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['route -n delete -inet -net 0.0.0.0/1 -interface utun2']);
    exec.on('netstat -rn', { stdout: POST.replace(/^0\/1 .*\n/m, '') });
    expect(await driver.apply(del, ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(1);
    expect(Object.keys(state.get<object>(ROUTE_STATE_KEY)!)).toHaveLength(2);
  });

  it('changes the gateway of our recorded bypass route, but never a same-prefix route a stale record points at', async () => {
    const { exec, state, ctx, driver } = setup(POST);
    const old = WANT[2]!;
    state.set(ROUTE_STATE_KEY, { [ids.route(old)]: old });
    const moved = { ...old, via: '192.168.1.254' };
    exec.on(
      'route -n change -inet -host 192.168.1.51 192.168.1.254',
      ok('change host 192.168.1.51: gateway 192.168.1.254'),
    );
    const upd: Change<'route'> = {
      kind: 'route',
      id: ids.route(old),
      action: 'update',
      before: old,
      after: moved,
      reason: 'via differs',
      cause: 'drift',
    };
    expect(await driver.apply(upd, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['route -n change -inet -host 192.168.1.51 192.168.1.254']);
    // stale record (route gone after a reboot), another program now owns 0/1 on utun0
    const s2 = setup(fixture('routes/netstat-nr-f-inet-0-1-utun0-link-gateway-wgtools.txt'));
    s2.state.set(ROUTE_STATE_KEY, { [ids.route(WANT[0]!)]: WANT[0]! });
    await expect(s2.driver.apply(create(WANT[0]!), s2.ctx)).rejects.toMatchObject({
      kind: 'conflict',
    });
    expect(s2.exec.mutations).toBe(0);
  });

  it('a link without a utun yet is a retryable driver error; unknown route types are unsupported', async () => {
    const { ctx, driver } = setup(PRE);
    await expect(
      driver.apply(create(spec('0.0.0.0/1', { dev: 'awg-home' })), ctx),
    ).rejects.toMatchObject({ kind: 'driver', retryable: true });
    await expect(
      driver.apply(create(spec('10.0.0.0/8', { type: 'throw' })), ctx),
    ).rejects.toMatchObject({ kind: 'unsupported' });
  });

  it('blackhole routes use -blackhole via loopback', async () => {
    const { exec, ctx, driver } = setup(PRE);
    exec.on(
      'route -n add -inet -net 10.0.0.0/8 127.0.0.1 -blackhole',
      ok('add net 10.0.0.0/8: gateway 127.0.0.1'),
    );
    expect(await driver.apply(create(spec('10.0.0.0/8', { type: 'blackhole' })), ctx)).toBe(
      'changed',
    );
  });

  it('dry-run logs the command and records nothing', async () => {
    const { exec, state, ctx, driver } = setup(PRE, { dryRun: true });
    expect(await driver.apply(create(WANT[0]!), ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['route -n add -inet -net 0.0.0.0/1 -interface utun2']);
    expect(state.get(ROUTE_STATE_KEY)).toBeUndefined();
  });
});
