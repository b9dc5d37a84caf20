import { describe, expect, it } from 'vitest';
import type { Change } from '../../../src/model/change.js';
import { ids } from '../../../src/model/identity.js';
import type { DesiredState, FirewallSpec } from '../../../src/model/resources.js';
import {
  createDarwinFirewallDriver,
  NOTE_NO_HOOK,
  NOTE_NO_TOKEN,
  NOTE_REBOUND,
  PF_STATE_KEY,
} from '../../../src/resources/firewall/darwin.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import { renderPfAnchor } from '../../../src/platform/darwin/pf-render.js';
import { recordUtun } from '../../../src/platform/darwin/utun.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { ScriptedExec } from './fake-exec.js';
import { fixture, sections } from './fixtures.js';
import { claims } from './helpers.js';

const RULESET = renderPfAnchor({
  killSwitch: true,
  allowLan: false,
  dnsLeakProtection: true,
  ipv6: 'block',
  tunnels: [
    {
      link: 'awg-work',
      dns: ['10.64.0.1'],
      endpoints: [{ address: '198.51.100.7', port: 51820, protocol: 'udp' }],
    },
  ],
});
const SPEC: FirewallSpec = { family: 'inet', table: 'awg', ruleset: RULESET };
const create: Change<'firewall'> = {
  kind: 'firewall',
  id: ids.firewall('awg'),
  action: 'create',
  after: SPEC,
  reason: 'missing',
  cause: 'initial',
};
const desired: DesiredState = {
  resources: [{ kind: 'firewall', id: ids.firewall('awg'), spec: SPEC, deps: [] }],
  warnings: [],
};

// Synthetic: the stock /etc/pf.conf anchor lines (comments omitted) and a plausible pfctl
// read-back of our anchor. pfctl's exact normalisation is not captured; the driver only
// compares read-backs with each other, never with the rendered text.
const PF_CONF =
  'scrub-anchor "com.apple/*"\nnat-anchor "com.apple/*"\nrdr-anchor "com.apple/*"\ndummynet-anchor "com.apple/*"\nanchor "com.apple/*"\nload anchor "com.apple" from "/etc/pf.anchors/com.apple"\n';
const READBACK =
  'pass quick on lo0 all flags any\npass out quick on utun5 inet proto udp from any to 10.64.0.1 port = 53 keep state\nblock drop out quick all\n';

const MAIN_BEFORE = fixture('pf/pfctl-sr-sequoia-15.0-before-sshuttle.txt');
const MAIN_AFTER = `${MAIN_BEFORE}anchor "com.awg/*" all\n`;
const REFS_NONE = fixture('pf/pfctl-s-References-none-macos26.txt');
const REFS_ONE = fixture('pf/pfctl-s-References-one-macos26.txt'); // token 15053025338191571182
const ENABLE = sections('pf/pfctl-E-X-streams-exitcodes-macos26.txt');

function setup() {
  const exec = new ScriptedExec()
    .on('pfctl -a com.awg -s Anchors', { stdout: '' })
    .on('pfctl -sr', { stdout: MAIN_BEFORE })
    .on('pfctl -s References', { stdout: REFS_NONE })
    .on('pfctl -a com.awg/awg -sr', { stdout: '' })
    .on('cat /etc/pf.conf', { stdout: PF_CONF })
    .on('pfctl -f -', { stderr: fixture('pf/pfctl-f-warning-10.11.3-pow.txt') })
    .on('pfctl -a com.awg/awg -f -', { stderr: fixture('pf/pfctl-f-warning-10.11.3-pow.txt') })
    .on('pfctl -E', { stderr: ENABLE.get('pfctl -E            exit 0')!.stderr });
  const state = new MemoryStateStore();
  recordUtun(state, 'awg-work', { ifname: 'utun5' });
  const reporter = new MemoryReporter();
  const ctx: ApplyContext = { exec, reporter, state, dryRun: false, claims };
  return { exec, state, ctx, reporter, driver: createDarwinFirewallDriver({ exec }) };
}

describe('darwin firewall driver (PF anchor)', () => {
  it('hooks the main ruleset, loads the bound anchor, takes a reference token, flushes states', async () => {
    const { exec, state, ctx, reporter, driver } = setup();
    exec.seq('pfctl -a com.awg/awg -sr', { stdout: '' }, { stdout: READBACK });
    expect(await driver.apply(create, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'pfctl -f -',
      'pfctl -a com.awg/awg -f -',
      'pfctl -E',
      'pfctl -F states',
    ]);
    const main = exec.calls.find((c) => c.line === 'pfctl -f -')!.input!;
    expect(main).toBe(`${PF_CONF}# awg\nanchor "com.awg/*"\n`);
    const anchor = exec.calls.find((c) => c.line === 'pfctl -a com.awg/awg -f -')!.input!;
    expect(anchor.split('\n')[0]).toBe('awg_work = "utun5"');
    expect(anchor).toContain('pass quick on $awg_work inet all flags any');
    expect(state.get(PF_STATE_KEY)).toEqual({
      token: '11012949885072952621',
      anchors: {
        'com.awg/awg': {
          ruleset: RULESET,
          readback: READBACK.trim().split('\n'),
          links: { awg_work: 'utun5' },
        },
      },
    });
    // the Sequoia main ruleset carries a run-time anchor that a reload from pf.conf drops
    expect(reporter.events).toContainEqual({
      type: 'warning',
      message:
        'reloading the PF main ruleset from /etc/pf.conf drops anchors other programs inserted at run time: com.apple.internet-sharing',
    });
  });

  it('second apply against the post-state is unchanged; observe returns the rendered text', async () => {
    const { exec, state, ctx, driver } = setup();
    state.set(PF_STATE_KEY, {
      token: '15053025338191571182',
      anchors: {
        'com.awg/awg': {
          ruleset: RULESET,
          readback: READBACK.trim().split('\n'),
          links: { awg_work: 'utun5' },
        },
      },
    });
    exec
      .on('pfctl -sr', { stdout: MAIN_AFTER })
      .on('pfctl -s References', { stdout: REFS_ONE })
      .on('pfctl -a com.awg/awg -sr', { stdout: READBACK })
      .on('pfctl -a com.awg -s Anchors', { stdout: 'com.awg/awg\n' });
    expect(await driver.apply(create, ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(0);
    const obs = await driver.observe({ desired, claims, state });
    expect(obs.resources).toEqual([
      { kind: 'firewall', id: 'firewall/inet/awg', spec: SPEC, deps: [] },
    ]);
    expect(obs.facts).toEqual({ pf: { tokenHeld: true, hooked: true } });
    expect(obs.foreign).toEqual([]);
  });

  it('drift is visible: lost token, lost hook, edited anchor, rebound utun', async () => {
    const { exec, state, driver } = setup();
    state.set(PF_STATE_KEY, {
      token: '15053025338191571182',
      anchors: {
        'com.awg/awg': {
          ruleset: RULESET,
          readback: READBACK.trim().split('\n'),
          links: { awg_work: 'utun5' },
        },
      },
    });
    exec.on('pfctl -a com.awg/awg -sr', { stdout: READBACK });
    let spec = (await driver.observe({ desired, claims, state })).resources[0]!.spec;
    expect(spec.ruleset).toBe(`${RULESET}${NOTE_NO_TOKEN}\n${NOTE_NO_HOOK}\n`);
    exec.on('pfctl -sr', { stdout: MAIN_AFTER }).on('pfctl -s References', { stdout: REFS_ONE });
    recordUtun(state, 'awg-work', { ifname: 'utun7' });
    spec = (await driver.observe({ desired, claims, state })).resources[0]!.spec;
    expect(spec.ruleset).toBe(`${RULESET}${NOTE_REBOUND}\n`);
    exec.on('pfctl -a com.awg/awg -sr', { stdout: 'pass all\n' });
    spec = (await driver.observe({ desired, claims, state })).resources[0]!.spec;
    expect(spec.ruleset).toBe('pass all\n');
  });

  it('reports other owners of the main ruleset as competitors', async () => {
    const { exec, state, driver } = setup();
    exec.on('pfctl -sr', { stdout: fixture('pf/pfctl-sr-sequoia-15.0-after-sshuttle.txt') });
    const obs = await driver.observe({ desired, claims, state });
    expect(obs.resources).toEqual([]);
    expect(obs.foreign.map((f) => f.id)).toEqual([
      'firewall/pf/sshuttle6-12300',
      'firewall/pf/sshuttle-12300',
    ]);
    const sa = fixture('pf/pfctl-sa-disabled-openvpn-2016-sshuttle-TRUNCATED.txt')
      .split('FILTER RULES:\n')[1]!
      .split('\n\n')[0]!;
    exec.on('pfctl -sr', { stdout: sa });
    expect(
      (await driver.observe({ desired, claims, state })).foreign.map((f) => f.description),
    ).toEqual([
      'PF anchor "sshuttle" in the main ruleset belongs to another program',
      'the PF main ruleset has 1 rule(s) outside anchors (e.g. "pass on lo all flags S/SA keep state")',
    ]);
  });

  it('a syntax error names the offending line of the loaded text', async () => {
    const { exec, state, ctx, driver } = setup();
    exec.on('pfctl -sr', { stdout: MAIN_AFTER }).on('pfctl -a com.awg/awg -f -', {
      code: 1,
      stderr: 'stdin:3: syntax error\npfctl: Syntax error in config file: pf rules not loaded\n',
    });
    await expect(driver.apply(create, ctx)).rejects.toMatchObject({
      kind: 'bug',
      message: expect.stringContaining('line 3: syntax error: pass quick on lo0 all flags any'),
    });
    expect(state.get(PF_STATE_KEY)).toBeUndefined();
  });

  it('delete flushes the anchor, releases our token, restores pf.conf; again is unchanged', async () => {
    const { exec, state, ctx, driver } = setup();
    state.set(PF_STATE_KEY, {
      token: '15053025338191571182',
      anchors: {
        'com.awg/awg': {
          ruleset: RULESET,
          readback: READBACK.trim().split('\n'),
          links: { awg_work: 'utun5' },
        },
      },
    });
    exec
      .seq('pfctl -a com.awg/awg -sr', { stdout: READBACK }, { stdout: '' })
      .seq('pfctl -sr', { stdout: MAIN_AFTER }, { stdout: MAIN_BEFORE })
      .on('pfctl -X 15053025338191571182', {
        stderr: [...ENABLE.entries()].find(([k]) => k.includes('last reference'))![1].stderr,
      })
      .on('pfctl -f /etc/pf.conf', { stderr: fixture('pf/pfctl-f-warning-10.11.3-pow.txt') });
    const del: Change<'firewall'> = {
      kind: 'firewall',
      id: ids.firewall('awg'),
      action: 'delete',
      before: SPEC,
      reason: 'not desired',
      cause: 'config',
    };
    expect(await driver.apply(del, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'pfctl -a com.awg/awg -F rules',
      'pfctl -X 15053025338191571182',
      'pfctl -f /etc/pf.conf',
    ]);
    expect(state.get(PF_STATE_KEY)).toEqual({ anchors: {} });
    expect(await driver.apply(del, ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(3);
  });

  it('a stale token (after reboot) is replaced by a new reference', async () => {
    const { exec, state, ctx, driver } = setup();
    state.set(PF_STATE_KEY, {
      token: '1',
      anchors: {
        'com.awg/awg': {
          ruleset: RULESET,
          readback: READBACK.trim().split('\n'),
          links: { awg_work: 'utun5' },
        },
      },
    });
    exec
      .on('pfctl -sr', { stdout: MAIN_AFTER })
      .on('pfctl -s References', { stdout: REFS_ONE })
      .on('pfctl -a com.awg/awg -sr', { stdout: READBACK });
    expect(await driver.apply(create, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['pfctl -E']);
    expect(state.get<{ token: string }>(PF_STATE_KEY)!.token).toBe('11012949885072952621');
  });
});

describe("darwin firewall driver: an unusable record and the last apply's copy", () => {
  const REC = {
    token: '15053025338191571182',
    anchors: {
      'com.awg/awg': {
        ruleset: RULESET,
        readback: READBACK.trim().split('\n'),
        links: { awg_work: 'utun5' },
      },
    },
  };
  const del: Change<'firewall'> = {
    kind: 'firewall',
    id: ids.firewall('awg'),
    action: 'delete',
    before: SPEC,
    reason: 'not desired',
    cause: 'config',
  };
  /** the record gone (set aside), its copy in the applied record */
  function lost(copy: unknown) {
    const s = setup();
    s.state.set('applied', { owned: { firewall: copy } });
    s.exec
      .on('pfctl -a com.awg/awg -sr', { stdout: READBACK })
      .seq(
        'pfctl -sr',
        { stdout: MAIN_AFTER },
        { stdout: MAIN_AFTER },
        { stdout: MAIN_AFTER },
        { stdout: MAIN_BEFORE },
      )
      .on('pfctl -X 15053025338191571182', {
        stderr: [...ENABLE.entries()].find(([k]) => k.includes('last reference'))![1].stderr,
      })
      .on('pfctl -f /etc/pf.conf', { stderr: fixture('pf/pfctl-f-warning-10.11.3-pow.txt') });
    return s;
  }

  it('a token PF still holds is ours: observed as held, released by delete, and the recovery is reported with the file and the token', async () => {
    const { exec, state, ctx, driver } = lost(REC);
    exec.on('pfctl -s References', { stdout: REFS_ONE });
    expect(
      (await driver.observe({ desired, claims, state })).resources.map((r) => r.spec.ruleset),
    ).toEqual([RULESET]);
    expect(await driver.owned!(state)).toEqual(REC);
    expect(await driver.apply(del, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'pfctl -a com.awg/awg -F rules',
      'pfctl -X 15053025338191571182',
      'pfctl -f /etc/pf.conf',
    ]);
    expect(state.get(PF_STATE_KEY)).toEqual({ anchors: {} });
    expect(state.recoveries[0]).toEqual({
      key: PF_STATE_KEY,
      file: `:memory:/${PF_STATE_KEY}`,
      reason: 'recovered',
      recovered: {
        from: ':memory:/applied',
        what: "PF's reference token 15053025338191571182 (PF holds it); the records of com.awg/awg",
      },
    });
  });

  it('a token PF no longer holds is not released (it may be another program’s by now): only the anchor is recovered', async () => {
    const { exec, state, ctx, driver } = lost(REC);
    expect((await driver.observe({ desired, claims, state })).resources[0]!.spec.ruleset).toBe(
      `${RULESET}${NOTE_NO_TOKEN}\n`,
    );
    expect(await driver.apply(del, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['pfctl -a com.awg/awg -F rules', 'pfctl -f /etc/pf.conf']);
    expect(state.recoveries[0]!.recovered!.what).toBe(
      'the records of com.awg/awg; not its reference token 15053025338191571182: PF no longer holds it',
    );
  });

  it.each([
    ['a record of the wrong shape', { token: 'x; rm', anchors: {} }],
    ['an anchor outside com.awg/', { anchors: { 'com.apple/x': REC.anchors['com.awg/awg'] } }],
  ])('%s is set aside (the record) or ignored (the copy)', async (_, bad) => {
    const { exec, state, driver } = lost(bad);
    exec.on('pfctl -s References', { stdout: REFS_ONE });
    state.set(PF_STATE_KEY, bad);
    expect(await driver.owned!(state)).toBeUndefined();
    expect(state.corrupt).toEqual([
      expect.objectContaining({ key: PF_STATE_KEY, reason: 'not a record of the macOS PF driver' }),
    ]);
    expect(state.recoveries).toEqual([]);
  });
});
