import { describe, expect, it } from 'vitest';
import type { Change } from '../../../src/model/change.js';
import type { DesiredState, DnsSpec } from '../../../src/model/resources.js';
import { createDarwinDnsDriver, DNS_STATE_KEY } from '../../../src/resources/dns/darwin.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { ScriptedExec } from './fake-exec.js';
import { fixture } from './fixtures.js';
import { claims } from './helpers.js';

const SERVICES = ['USB 10/100/1000 LAN', 'Wi-Fi', 'Thunderbolt Bridge'];
const EMPTY_WIFI = fixture('dns/networksetup-getdnsservers-wifi-empty-2023-mageddo.txt');
// Same message for the other services (only Wi-Fi was captured).
const empty = (svc: string, what = 'DNS Servers') => ({
  stdout: EMPTY_WIFI.replace('DNS Servers', what).replace('Wi-Fi', svc),
});
const SET = { stdout: fixture('dns/networksetup-getdnsservers-wifi-set-2023-mageddo.txt') };
const SYSTEM: DnsSpec = { scope: 'system', servers: ['8.8.8.8', '8.8.4.4'], domains: ['~.'] };
const change = (action: 'create' | 'delete', spec: DnsSpec): Change<'dns'> =>
  action === 'create'
    ? { kind: 'dns', id: `dns/${spec.scope}`, action, after: spec, reason: 'r', cause: 'initial' }
    : { kind: 'dns', id: `dns/${spec.scope}`, action, before: spec, reason: 'r', cause: 'config' };
const desired = (specs: DnsSpec[]): DesiredState => ({
  resources: specs.map((s) => ({ kind: 'dns', id: `dns/${s.scope}`, spec: s, deps: [] })),
  warnings: [],
});

function setup() {
  const exec = new ScriptedExec().on('networksetup -listallnetworkservices', {
    stdout: fixture('dns/networksetup-listallnetworkservices-2023-mageddo.txt'),
  });
  for (const s of SERVICES)
    exec
      .on(`networksetup -getdnsservers ${s}`, empty(s))
      .on(`networksetup -getsearchdomains ${s}`, empty(s, 'Search Domains'));
  const state = new MemoryStateStore();
  const ctx: ApplyContext = { exec, reporter: silentReporter, state, dryRun: false, claims };
  return { exec, state, ctx, driver: createDarwinDnsDriver({ exec }) };
}

describe('darwin dns driver: system scope (networksetup)', () => {
  it('backs up every enabled service, sets servers, flushes; second apply unchanged', async () => {
    const { exec, state, ctx, driver } = setup();
    expect((await driver.observe({ desired: desired([SYSTEM]), claims, state })).resources).toEqual(
      [],
    );
    expect(await driver.apply(change('create', SYSTEM), ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'networksetup -setdnsservers USB 10/100/1000 LAN 8.8.8.8 8.8.4.4',
      'networksetup -setdnsservers Wi-Fi 8.8.8.8 8.8.4.4',
      'networksetup -setdnsservers Thunderbolt Bridge 8.8.8.8 8.8.4.4',
      'dscacheutil -flushcache',
      'killall -HUP mDNSResponder',
    ]);
    expect(state.get(DNS_STATE_KEY)).toEqual({
      links: {},
      system: {
        applied: SYSTEM,
        written: { servers: ['8.8.8.8', '8.8.4.4'], search: null },
        backup: Object.fromEntries(SERVICES.map((s) => [s, { servers: [], search: [] }])),
      },
    });
    for (const s of SERVICES) exec.on(`networksetup -getdnsservers ${s}`, SET);
    expect(await driver.apply(change('create', SYSTEM), ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(5);
    expect(
      (await driver.observe({ desired: desired([SYSTEM]), claims, state })).resources.map(
        (r) => r.spec,
      ),
    ).toEqual([SYSTEM]);
    // someone resets Wi-Fi to DHCP: drift shows the system's value
    exec.on('networksetup -getdnsservers Wi-Fi', empty('Wi-Fi'));
    expect(
      (await driver.observe({ desired: desired([SYSTEM]), claims, state })).resources[0]!.spec,
    ).toEqual({ scope: 'system', servers: [], domains: ['~.'] });
  });

  it('delete restores each service from the backup (Empty = DHCP) and forgets it', async () => {
    const { exec, state, ctx, driver } = setup();
    await driver.apply(change('create', SYSTEM), ctx);
    for (const s of SERVICES) exec.on(`networksetup -getdnsservers ${s}`, SET);
    const before = exec.mutations;
    expect(await driver.apply(change('delete', SYSTEM), ctx)).toBe('changed');
    expect(exec.mutationLines.slice(before)).toEqual([
      'networksetup -setdnsservers USB 10/100/1000 LAN Empty',
      'networksetup -setdnsservers Wi-Fi Empty',
      'networksetup -setdnsservers Thunderbolt Bridge Empty',
      'dscacheutil -flushcache',
      'killall -HUP mDNSResponder',
    ]);
    expect(state.get(DNS_STATE_KEY)).toEqual({ links: {} });
    expect(await driver.apply(change('delete', SYSTEM), ctx)).toBe('unchanged');
  });

  it('the backup is durable before the first mutation; networksetup errors on stdout fail the apply', async () => {
    const { exec, state, ctx, driver } = setup();
    exec.on('networksetup -setdnsservers Wi-Fi 8.8.8.8 8.8.4.4', {
      code: 4,
      stdout: fixture('dns/networksetup-error-unrecognized-service-crc.txt'),
    });
    await expect(driver.apply(change('create', SYSTEM), ctx)).rejects.toMatchObject({
      kind: 'driver',
      message: expect.stringContaining('The parameters were not valid.'),
    });
    expect(state.get<{ system: { backup: object } }>(DNS_STATE_KEY)!.system.backup).toEqual(
      Object.fromEntries(SERVICES.map((s) => [s, { servers: [], search: [] }])),
    );
  });

  it('keeps the original of a service already set by the user, and manages search domains when asked', async () => {
    const { exec, state, ctx, driver } = setup();
    exec.on('networksetup -getdnsservers Wi-Fi', SET);
    const spec: DnsSpec = { scope: 'system', servers: ['10.64.0.1'], domains: ['corp.example'] };
    await driver.apply(change('create', spec), ctx);
    expect(exec.mutationLines).toContain('networksetup -setsearchdomains Wi-Fi corp.example');
    expect(
      state.get<{ system: { backup: Record<string, unknown> } }>(DNS_STATE_KEY)!.system.backup[
        'Wi-Fi'
      ],
    ).toEqual({ servers: ['8.8.8.8', '8.8.4.4'], search: [] });
  });
});

describe('darwin dns driver: link scope (dynamic store)', () => {
  const LINK: DnsSpec = { scope: 'awg-work', servers: ['10.64.0.1'], domains: ['~corp.example'] };
  const SHOW =
    '<dictionary> {\n  SearchDomains : <array> {\n    0 : corp.example\n  }\n  ServerAddresses : <array> {\n    0 : 10.64.0.1\n  }\n  SupplementalMatchDomains : <array> {\n    0 : corp.example\n  }\n}\n';

  it('publishes a supplemental resolver under com.awg.<link>; second apply unchanged; delete removes it', async () => {
    const { exec, state, ctx, driver } = setup();
    exec.on('scutil', { stdout: '  No such key\n' });
    expect(await driver.apply(change('create', LINK), ctx)).toBe('changed');
    const set = exec.calls.find((c) => c.kind === 'mutate' && c.line === 'scutil')!;
    expect(set.input).toBe(
      'd.init\nd.add ServerAddresses * 10.64.0.1\nd.add SupplementalMatchDomains * corp.example\nd.add SearchDomains * corp.example\nset State:/Network/Service/com.awg.awg-work/DNS\nquit\n',
    );
    exec.on('scutil', (input) =>
      input?.startsWith('show State:/Network/Service/com.awg.awg-work/DNS') ? { stdout: SHOW } : {},
    );
    const n = exec.mutations;
    expect(await driver.apply(change('create', LINK), ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(n);
    expect(
      (await driver.observe({ desired: desired([LINK]), claims, state })).resources.map(
        (r) => r.spec,
      ),
    ).toEqual([LINK]);
    expect(await driver.apply(change('delete', LINK), ctx)).toBe('changed');
    expect(exec.calls.at(-3)!.input).toBe(
      'remove State:/Network/Service/com.awg.awg-work/DNS\nquit\n',
    );
  });
});

describe("darwin dns driver: an unusable record and the last apply's copy", () => {
  it('restores the services that still hold what we wrote, from the copy; a service changed since is left alone; the recovery is reported', async () => {
    const { exec, state, ctx, driver } = setup();
    await driver.apply(change('create', SYSTEM), ctx);
    for (const s of SERVICES) exec.on(`networksetup -getdnsservers ${s}`, SET);
    state.set('applied', { owned: { dns: await driver.owned!(state) } });
    state.set(DNS_STATE_KEY, { links: {}, system: 'torn' });
    // synthetic: Wi-Fi set by hand after our apply
    exec.on('networksetup -getdnsservers Wi-Fi', { stdout: '192.0.2.53\n' });
    const before = exec.mutations;
    expect(await driver.apply(change('delete', SYSTEM), ctx)).toBe('changed');
    expect(exec.mutationLines.slice(before)).toEqual([
      'networksetup -setdnsservers USB 10/100/1000 LAN Empty',
      'networksetup -setdnsservers Thunderbolt Bridge Empty',
      'dscacheutil -flushcache',
      'killall -HUP mDNSResponder',
    ]);
    expect(state.corrupt).toEqual([
      expect.objectContaining({
        key: DNS_STATE_KEY,
        reason: 'not a record of the macOS DNS driver',
      }),
    ]);
    expect(state.recoveries[0]!.recovered).toEqual({
      from: ':memory:/applied',
      what: 'the original DNS of "USB 10/100/1000 LAN", "Thunderbolt Bridge"; not the originals of "Wi-Fi": their DNS is no longer what awg wrote',
    });
    expect(state.get(DNS_STATE_KEY)).toEqual({ links: {} });
  });

  it('without a usable copy nothing is restored (no restore by guess)', async () => {
    const { exec, state, ctx, driver } = setup();
    state.set('applied', { owned: { dns: { links: {}, system: { backup: 'x' } } } });
    for (const s of SERVICES) exec.on(`networksetup -getdnsservers ${s}`, SET);
    expect((await driver.observe({ desired: desired([]), claims, state })).resources).toEqual([]);
    expect(await driver.apply(change('delete', SYSTEM), ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(0);
    expect(state.recoveries).toEqual([]);
  });
});
