/**
 * Faults on the macOS host model, side by side with test/netns/e2e-faults.test.ts and
 * leak-killswitch.test.ts: awg without root, the engine dying at every point of an apply, a
 * failure at every mutation of `down`, an engine that cannot open its utun, the kill switch
 * with allowLan, invalid configs. Every case ends with the host either as it was before or
 * fail-closed (PF verdicts from pf-eval.ts), never open. Verified on the model only.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/cli/commands/apply.js';
import { diffCommand } from '../../../src/cli/commands/diff.js';
import { downCommand } from '../../../src/cli/commands/down.js';
import type { Io } from '../../../src/cli/output.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';
import {
  DNS_OUT,
  ENDPOINT_UDP,
  macConfig,
  Rig,
  WEB,
  rigsCleanedAfterEach,
} from '../../helpers/macos-host/scenario.js';

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const closed = (h: MacHost) =>
  h.pf.enabled &&
  h.pf.main.includes('anchor "com.awg/*" all') &&
  pfVerdict(h, WEB) === 'block' &&
  pfVerdict(h, DNS_OUT) === 'block';

describe('macOS host model: faults', () => {
  const rig = rigsCleanedAfterEach();

  /** the CLI on a rig: exit code, stdout, stderr */
  async function cli(r: Rig, cmd: 'apply' | 'diff' | 'down', file = r.file) {
    let out = '';
    let err = '';
    const io: Io = { out: (x) => (out += x), err: (x) => (err += x), colour: false };
    const common = { stateDir: join(r.dir, 'state'), direct: true };
    const deps = { platform: r.platform, exec: r.host };
    const code =
      cmd === 'apply'
        ? await applyCommand(io, { file, ...common }, deps)
        : cmd === 'diff'
          ? await diffCommand(io, { file, ...common }, deps)
          : await downCommand(io, { ...common }, deps);
    return { code, out, err };
  }

  it('without root: apply and down fail with a permission error (exit 4) and change nothing', async () => {
    const r = rig();
    const prior = r.host.snapshot();
    r.host.root = false;
    const fresh = await cli(r, 'apply');
    expect(fresh.err).toMatch(/error \[permission\]/);
    expect(fresh.code).toBe(4);
    expect(r.host.snapshot()).toEqual(prior);

    // applied as root, then changed (a new MTU: `ifconfig utun0 mtu`) and taken down as a user
    r.host.root = true;
    expect((await cli(r, 'apply')).code).toBe(0);
    const applied = r.host.snapshot();
    r.host.root = false;
    r.write(macConfig({ mtu: 1380 }));
    const change = await cli(r, 'apply');
    expect(change.err).toMatch(/error \[permission\]: pfctl .*Permission denied/);
    expect(change.code).toBe(4);
    expect(r.host.snapshot()).toEqual(applied);
    const down = await cli(r, 'down');
    expect(down.err).toMatch(/\[permission\]|must be root|Permission denied|admin privileges/);
    expect(down.code).toBe(4);
    expect(r.host.snapshot()).toEqual(applied);

    r.host.root = true;
    expect((await cli(r, 'down')).code).toBe(0);
    expect(r.host.snapshot()).toEqual(prior);
  });

  // each driver's own refusal text (PF reachable, the one tool refused) is a permission error
  it.each([
    ['route', /^route -n delete/, 'down', /route delete .*must be root/],
    [
      'ifconfig',
      /^ifconfig utun\d+ mtu/,
      'mtu',
      /ifconfig utun\d+ mtu 1380: .*Operation not permitted/,
    ],
    [
      'networksetup',
      /^networksetup -setdnsservers/,
      'down',
      /networksetup -setdnsservers .*admin privileges/,
    ],
    ['pfctl -X', /^pfctl -X/, 'down', /pfctl -X: .*Permission denied/],
  ] as const)(
    '%s refused: a permission error naming the tool',
    async (_tool, refuse, what, message) => {
      const r = rig();
      const prior = r.host.snapshot();
      expect((await cli(r, 'apply')).code).toBe(0);
      r.host.root = refuse;
      if (what === 'mtu') {
        r.write(macConfig({ mtu: 1380 }));
        const x = await cli(r, 'apply');
        expect(x.err).toMatch(/error \[permission\]/);
        expect(x.err).toMatch(message);
        expect(x.code).toBe(4);
      } else {
        // down goes on past the refusal and reports every failure; the CLI names what is left
        // and exits as a permission error (4): running it as root is what to do
        const d = await r.down();
        expect(d.errors.length).toBeGreaterThan(0);
        expect(d.errors.map((e) => e.kind)).toEqual(d.errors.map(() => 'permission'));
        expect(d.errors[0]!.message).toMatch(message);
        expect(d.left.length).toBeGreaterThan(0);
        const c = await cli(r, 'down');
        expect(c.err).toMatch(message);
        expect(c.err).toMatch(/down left objects behind: /);
        expect(c.code).toBe(4);
      }
      r.host.root = true;
      r.write(macConfig());
      expect((await cli(r, 'down')).code).toBe(0);
      expect(r.host.snapshot()).toEqual(prior);
    },
  );

  it.each([true, false])(
    'the engine dies after any mutation of the first apply (kill switch %s): rolled back, fail-closed or converged again, never open',
    async (killSwitch) => {
      const probe = rig(macConfig({ killSwitch }));
      expect((await probe.apply()).ctx.outcome).toBe('converged');
      const total = probe.mutationLines().length;
      const seen = new Set<string>();
      for (let k = 1; k <= total; k++) {
        const r = rig(macConfig({ killSwitch }));
        const prior = r.host.snapshot();
        // the endpoint's bypass route comes before the engine (make before break): a kill then
        // finds no engine, and the run converges
        let running = false;
        r.host.triggers = [
          {
            match: /./,
            nth: k,
            run: () => ((running = r.engines.running.has('home')), r.engines.kill('home')),
          },
        ];
        const { ctx } = await r.apply();
        const at = `after mutation ${k} (${r.mutationLines()[k - 1]}): ${ctx.outcome}`;
        if (!running) expect(ctx.outcome, at).toBe('converged');
        else seen.add(ctx.outcome ?? 'none');
        if (ctx.outcome === 'converged') {
          // repaired within the run: the engine runs again and nothing is left to do
          expect(r.engines.running.has('home'), at).toBe(true);
          expect(await r.diff(), at).toEqual([]);
        } else if (ctx.outcome === 'rolled-back')
          expect(same(r.host.snapshot(), prior), at).toBe(true);
        else {
          expect(ctx.outcome, at).toBe('failed-closed');
          expect(killSwitch, at).toBe(true);
          expect(closed(r.host), at).toBe(true);
        }
        const d = await r.down();
        expect(d.errors, at).toEqual([]);
        expect(same(r.host.snapshot(), prior), `${at}; then down`).toBe(true);
        r.cleanup();
      }
      // as on Linux (e2e-faults "a link deleted during apply …"): the run fails, and ends
      // fail-closed with the kill switch, rolled back without it
      expect([...seen]).toEqual([killSwitch ? 'failed-closed' : 'rolled-back']);
    },
  );

  it.each([true, false])(
    'a failure at any mutation of down (kill switch %s) is reported, and the next down restores the host exactly',
    async (killSwitch) => {
      const probe = rig(macConfig({ killSwitch }));
      await probe.apply();
      const before = probe.mutationLines().length;
      expect((await probe.down()).errors).toEqual([]);
      const total = probe.mutationLines().length - before;
      expect(total).toBeGreaterThan(5);
      for (let k = 1; k <= total; k++) {
        const r = rig(macConfig({ killSwitch }));
        const prior = r.host.snapshot();
        expect((await r.apply()).ctx.outcome).toBe('converged');
        const start = r.mutationLines().length;
        r.host.faults = [{ match: /./, nth: k }];
        const first = await r.down();
        const failed = r.mutationLines()[start + k - 1];
        const at = `down failing at mutation ${k} (${failed})`;
        if (/^(dscacheutil|killall)/.test(failed ?? '')) expect(first.errors, at).toEqual([]);
        else expect(first.errors.length + first.left.length, at).toBeGreaterThan(0);
        // with the kill switch, a half-done down that kept our anchor keeps it closed
        if (
          killSwitch &&
          r.host.pf.anchors.get('com.awg/awg')?.length &&
          r.host.pf.enabled &&
          r.host.pf.main.includes('anchor "com.awg/*" all')
        )
          expect(pfVerdict(r.host, WEB), at).toBe('block');
        r.host.faults = [];
        const second = await r.down();
        expect(second.errors, at).toEqual([]);
        expect(same(r.host.snapshot(), prior), `${at}; then down again`).toBe(true);
        r.cleanup();
      }
    },
  );

  it('a failure at any mutation while repairing a dead engine (kill switch on) never opens the host: repaired, or still closed', async () => {
    const probe = rig();
    await probe.apply();
    probe.engines.kill('home');
    const start = probe.mutationLines().length;
    expect((await probe.apply()).ctx.outcome).toBe('converged');
    const total = probe.mutationLines().length - start;
    expect(total).toBeGreaterThan(3);
    for (let k = 1; k <= total; k++) {
      const r = rig();
      await r.apply();
      r.engines.kill('home');
      const from = r.mutationLines().length;
      r.host.faults = [{ match: /./, nth: k }];
      const { ctx } = await r.apply();
      const at = `repair failing at mutation ${k} (${r.mutationLines()[from + k - 1]}): ${ctx.outcome}`;
      if (ctx.outcome === 'converged') expect(await r.diff(), at).toEqual([]);
      else {
        expect(ctx.outcome, at).toBe('failed-closed');
        expect(closed(r.host), at).toBe(true);
        expect(pfVerdict(r.host, ENDPOINT_UDP), at).toBe('pass');
      }
      r.host.faults = [];
      expect((await r.apply()).ctx.outcome, at).toBe('converged');
      r.cleanup();
    }
  });

  it('a kill switch that could not be installed is not reported as fail-closed (every anchor load fails: DIOCBEGIN busy)', async () => {
    const r = rig();
    const prior = r.host.snapshot();
    r.host.faults = [{ match: /^pfctl -a com\.awg\/awg -f -$/, nth: 'every' }];
    const x = await cli(r, 'apply');
    // the host's ioctl failure, not a bug in the rendered anchor (which would not be retried)
    expect(x.err).toMatch(
      /error \[driver\]: .*loading the PF anchor com\.awg\/awg failed: pfctl: DIOCBEGIN: Device busy/,
    );
    expect(x.code).toBe(6);
    expect(x.err).not.toMatch(/traffic is blocked \(fail-closed\)/);
    expect(x.err).toMatch(/traffic is NOT blocked/);
    expect(closed(r.host)).toBe(false);
    expect(r.host.snapshot()).toEqual(prior);
  });

  it('a kill switch load that fails once is installed again by the fail-closed rollback', async () => {
    const r = rig();
    r.host.faults = [{ match: /^pfctl -a com\.awg\/awg -f -$/ }];
    const x = await cli(r, 'apply');
    expect(x.code).toBe(6);
    expect(x.err).toMatch(/traffic is blocked \(fail-closed\)/);
    expect(closed(r.host)).toBe(true);
  });

  it('an engine that cannot open its utun: with the kill switch the host is closed before the first connect; without, rolled back', async () => {
    const ks = rig(macConfig({ killSwitch: true }));
    const prior = ks.host.snapshot();
    ks.engines.failStarts = 1;
    const a = await ks.apply();
    expect(a.ctx.outcome).toBe('failed-closed');
    expect(closed(ks.host)).toBe(true);
    expect(pfVerdict(ks.host, ENDPOINT_UDP)).toBe('pass');
    expect([...ks.host.interfaces.keys()].filter((n) => n.startsWith('utun'))).toEqual([]);
    expect((await ks.apply()).ctx.outcome).toBe('converged');
    await ks.down();
    expect(ks.host.snapshot()).toEqual(prior);

    const open = rig(macConfig({ killSwitch: false }));
    const prior2 = open.host.snapshot();
    open.engines.failStarts = 1;
    expect((await open.apply()).ctx.outcome).toBe('rolled-back');
    expect(open.host.snapshot()).toEqual(prior2);
  });

  it('allowLan: the LAN (and link-local) passes outside the tunnel, the internet and DNS to others do not', async () => {
    const r = rig(macConfig({ killSwitch: 'allowLan' }));
    expect((await r.apply()).ctx.outcome).toBe('converged');
    r.engines.kill('home');
    expect(pfVerdict(r.host, { ...WEB, dst: '192.168.1.20' })).toBe('pass');
    expect(pfVerdict(r.host, { ...WEB, dst: '169.254.10.1' })).toBe('pass');
    expect(pfVerdict(r.host, WEB)).toBe('block');
    expect(pfVerdict(r.host, DNS_OUT)).toBe('block');
    // leak protection: DNS to a LAN resolver is still DNS outside the tunnel
    expect(pfVerdict(r.host, { ...DNS_OUT, dst: '192.168.1.1' })).toBe('block');
  });

  const invalid: [string, string][] = [
    ['YAML syntax', 'version: 1\nrules: [\n  { name: a\n'],
    ['unknown field', 'version: 1\nkillSwitch: { enabled: true }\nrouting:\n  tableBse: 100\n'],
    [
      'rule target that does not exist',
      'version: 1\nrules:\n  - match: { name: curl }\n    target: nowhere\n',
    ],
  ];
  it.each(invalid)(
    'invalid config (%s): diff and apply exit 1 with nothing changed, fresh and on top of an applied config',
    async (_name, yaml) => {
      const r = rig();
      const bad = join(r.dir, 'bad.yaml');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(bad, yaml, { mode: 0o600 });
      const prior = r.host.snapshot();
      for (const cmd of ['diff', 'apply'] as const) {
        const x = await cli(r, cmd, bad);
        expect(x.code, `${cmd}: ${x.err}`).toBe(1);
        expect(x.err).toMatch(/bad\.yaml:\d+:\d+/);
      }
      expect(r.mutationLines()).toEqual([]);
      expect(r.host.snapshot()).toEqual(prior);
      expect((await cli(r, 'apply')).code).toBe(0);
      const applied = r.host.snapshot();
      const n = r.mutationLines().length;
      const x = await cli(r, 'apply', bad);
      expect(x.code).toBe(1);
      expect(x.err).toContain('nothing was applied');
      expect(r.mutationLines().length).toBe(n);
      expect(r.host.snapshot()).toEqual(applied);
      expect((await cli(r, 'diff')).code).toBe(0);
      expect((await cli(r, 'down')).code).toBe(0);
      expect(r.host.snapshot()).toEqual(prior);
    },
  );
});
