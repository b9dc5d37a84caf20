/**
 * The kill switch from boot (Step 9 item 3): the boot table, its file in the state directory,
 * and the driver keeping that copy with the table. On the wire: test/netns/killswitch-boot.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import {
  bootPolicy,
  firewallSpec,
  renderTable,
} from '../../../../src/resources/firewall/render.js';
import {
  BOOT_RULESET_FILE,
  createLinuxFirewallDriver,
  parseBootFile,
  renderBootFile,
} from '../../../../src/resources/firewall/linux.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import { FileStateStore, MemoryStateStore, type StateStore } from '../../../../src/util/state.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import type { Change } from '../../../../src/model/change.js';
import type { FirewallSpec } from '../../../../src/model/resources.js';
import { RecordingExec } from '../../../helpers/exec.js';
import { CommittedReadBackError } from '../../../../src/resources/driver.js';

const golden = new URL('./golden/', import.meta.url);
const policy = (name: string) =>
  JSON.parse(readFileSync(new URL(`${name}.policy.json`, golden), 'utf8')) as NftPolicy;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('the boot table', () => {
  it('is the kill switch without what needs the running daemon: no cgroup match, no default tunnel mark (golden)', async () => {
    const p = policy('per-app-full');
    expect(p.killSwitch).not.toBe('off');
    const boot = renderTable(bootPolicy(p)!);
    await expect(boot).toMatchFileSnapshot('./golden/per-app-full.boot.nft');
    expect(renderTable(p)).toContain('socket cgroupv2');
    expect(boot).not.toContain('socket cgroupv2');
    expect(boot).not.toMatch(/comment "default"/);
    for (const c of ['kill-switch', 'tunnels', 'dhcp', 'ndp', 'loopback', 'bypass'])
      expect(boot).toContain(`comment "${c}"`);
    expect(firewallSpec(p).boot).toBeDefined();
  });

  it('is absent when the kill switch is off', () => {
    const p: NftPolicy = { ...policy('per-app-full'), killSwitch: 'off' };
    expect(bootPolicy(p)).toBeUndefined();
    expect(firewallSpec(p).boot).toBeUndefined();
  });

  it('its file is one nft transaction that reads back as the table; anything else is unreadable (drift)', () => {
    const spec = firewallSpec(policy('per-app-full'));
    const text = renderBootFile(spec.table, spec.boot!);
    expect(text.split('\n').slice(1, 4)).toEqual([
      `add table inet ${spec.table}`,
      `delete table inet ${spec.table}`,
      `table inet ${spec.table} {`,
    ]);
    expect(text).toMatch(/^# managed-by=awg/);
    expect(parseBootFile(text, spec.table)).toBe(spec.boot);
    expect(parseBootFile(text, 'other')).toMatch(/^unreadable/);
    expect(
      parseBootFile(text.replace('add table', 'flush ruleset\nadd table'), spec.table),
    ).toMatch(/^unreadable/);
  });
});

describe('the firewall driver keeps the boot copy with the table', () => {
  const spec = firewallSpec(policy('per-app-full'));
  /** nft answers: the ruleset is our table as the spec says (the rendered text) */
  const exec = () =>
    new RecordingExec({
      'nft -t list ruleset': renderTable(policy('per-app-full')),
    });
  const ctxOf = (state: StateStore, e = exec()) => ({
    exec: e,
    reporter: new MemoryReporter(),
    state,
    dryRun: false,
    claims: { ...DEFAULT_CLAIMS, nftTable: spec.table },
  });
  const change = (action: 'update' | 'delete'): Change<'firewall'> =>
    ({
      kind: 'firewall',
      id: `firewall/inet/${spec.table}`,
      action,
      reason: 'test',
      cause: 'drift',
      before: spec,
      ...(action === 'update' ? { after: spec } : {}),
    }) as Change<'firewall'>;

  it('a missing copy is drift in observe, and an apply of the same table writes only the copy (0600)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-boot-'));
    dirs.push(dir);
    const state = new FileStateStore(dir);
    const d = createLinuxFirewallDriver({ exec: exec() });
    const scope = {
      desired: { resources: [], warnings: [] },
      claims: { ...DEFAULT_CLAIMS, nftTable: spec.table },
      state,
    };
    const before = (await d.observe(scope)).resources[0]!.spec as FirewallSpec;
    expect(before.ruleset).toBe(spec.ruleset);
    expect(before.boot).toBeUndefined();
    const ctx = ctxOf(state);
    expect(await d.apply(change('update'), ctx)).toBe('changed');
    expect(ctx.exec.log).toEqual([expect.stringMatching(/^write .*killswitch-boot\.nft/)]);
    expect(((await d.observe(scope)).resources[0]!.spec as FirewallSpec).boot).toBe(spec.boot);
    expect((await import('node:fs')).statSync(join(dir, BOOT_RULESET_FILE)).mode & 0o777).toBe(
      0o600,
    );
    // an edited copy reads as something else: drift again
    writeFileSync(
      join(dir, BOOT_RULESET_FILE),
      readFileSync(join(dir, BOOT_RULESET_FILE), 'utf8').replace(
        'counter drop comment "kill-switch"',
        'counter accept comment "kill-switch"',
      ),
    );
    expect(((await d.observe(scope)).resources[0]!.spec as FirewallSpec).boot).not.toBe(spec.boot);
  });

  it('a copy that cannot be written is a warning: the running table is never undone for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-boot-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'not-a-dir'), '');
    const ctx = ctxOf(new FileStateStore(join(dir, 'not-a-dir', 'state')));
    const d = createLinuxFirewallDriver({ exec: exec() });
    expect(await d.apply(change('update'), ctx)).toBe('changed');
    expect(ctx.reporter.events).toContainEqual(
      expect.objectContaining({
        type: 'warning',
        message: expect.stringMatching(/boot copy .* could not be written/),
      }),
    );
  });

  it('a load that commits but reads back differently throws CommittedReadBackError and keeps the copy with what runs', async () => {
    const state = new MemoryStateStore();
    // the kernel lists another table than the one loaded, before and after the load
    const e = new RecordingExec({
      'nft -t list ruleset': renderTable(policy('per-app-full')).replace(
        'comment "kill-switch"',
        'comment "kill-switch-edited"',
      ),
    });
    const ctx = ctxOf(state, e);
    const d = createLinuxFirewallDriver({ exec: e });
    const err = await d.apply(change('update'), ctx).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(CommittedReadBackError);
    expect((err as CommittedReadBackError).id).toBe(`firewall/inet/${spec.table}`);
    expect((err as Error).message).toMatch(/reads back differently/);
    expect(e.log).toEqual([
      expect.stringMatching(/^nft -f - \(/),
      expect.stringMatching(/^write .*killswitch-boot\.nft/),
    ]);
    expect(state.get(BOOT_RULESET_FILE)).toBe(spec.boot);
  });

  it('delete removes the copy before the table', async () => {
    const state = new MemoryStateStore();
    state.set(BOOT_RULESET_FILE, spec.boot);
    const ctx = ctxOf(state);
    const d = createLinuxFirewallDriver({ exec: exec() });
    expect(await d.apply(change('delete'), ctx)).toBe('changed');
    expect(state.get(BOOT_RULESET_FILE)).toBeUndefined();
    expect(ctx.exec.log).toEqual([
      expect.stringMatching(/^rm .*killswitch-boot\.nft/),
      `nft delete table inet ${spec.table}`,
    ]);
  });
});
