/**
 * observeAndPlan (pipeline/diff.ts) over fake drivers: the plan against an empty host, no
 * change once converged, a deleted object as drift (the last applied resources say so), and
 * the daemon's Diff answering with the same plan.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import { hasChanges } from '../../../src/model/change.js';
import { toPlanDocument } from '../../../src/model/plan-document.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { converge } from '../../../src/pipeline/converge.js';
import { observeAndPlan } from '../../../src/pipeline/diff.js';
import { prepare, type Prepared } from '../../../src/pipeline/prepare.js';
import type { ReconcileEnv } from '../../../src/reconciler/observe.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { fingerprintKeyOf } from '../../../src/util/host-key.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';

const config = (allowed: string) => oneTunnelConfig({ allowedIPs: allowed, rule: false });

describe('observeAndPlan', () => {
  let dir: string;
  let file: string;
  let state: MemoryStateStore;
  let drivers: ReturnType<typeof createFakeDriverSet>;
  let applied: AppliedStore;

  async function prepared(): Promise<Prepared> {
    const r = await prepare(file, {
      facts: { cgroupNftPrefix: '' },
      fingerprintKey: () => fingerprintKeyOf(state),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.prepared;
  }
  const envOf = (p: Prepared): ReconcileEnv => ({
    drivers,
    claims: p.claims,
    state,
    exec: new RecordingExec(),
    reporter: silentReporter,
    secrets: p.secrets,
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-diff-'));
    file = join(dir, 'awg.yaml');
    writeFileSync(file, config('10.200.50.0/24'));
    state = new MemoryStateStore();
    drivers = createFakeDriverSet();
    applied = new AppliedStore(state);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('plans everything on an empty host and changes nothing itself', async () => {
    const p = await prepared();
    const plan = await observeAndPlan(envOf(p), applied, p.desired);
    const active = plan.changes.filter((c) => c.action !== 'noop');
    expect(active.length).toBeGreaterThan(0);
    expect(active.every((c) => c.action === 'create' && c.cause === 'initial')).toBe(true);
    expect(Object.values(drivers).every((d) => d.objects.size === 0)).toBe(true);
  });

  it('converged: no changes; an object deleted behind our back: drift; an edit: config', async () => {
    let p = await prepared();
    const ctx = await converge(envOf(p), applied, p);
    expect(ctx.outcome).toBe('converged');
    expect(hasChanges(await observeAndPlan(envOf(p), applied, p.desired))).toBe(false);
    const route = [...drivers.route.objects.keys()].find((k) => k.includes('10.200.50.0'))!;
    drivers.route.objects.delete(route);
    const drift = (await observeAndPlan(envOf(p), applied, p.desired)).changes.filter(
      (c) => c.action !== 'noop',
    );
    expect(drift.map((c) => [c.action, c.cause])).toEqual([['create', 'drift']]);
    await converge(envOf(p), applied, p);
    writeFileSync(file, config('10.200.50.0/24, 10.200.60.0/24'));
    p = await prepared();
    const edit = (await observeAndPlan(envOf(p), applied, p.desired)).changes.filter(
      (c) => c.action !== 'noop',
    );
    expect(edit.length).toBeGreaterThan(0);
    expect(edit.every((c) => c.cause === 'config')).toBe(true);
  });

  it("the daemon's Diff answers with the same plan", async () => {
    const daemon = new Daemon({
      configPath: file,
      drivers,
      exec: new RecordingExec(),
      state,
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      placement: false,
      healthIntervalMs: 0,
    });
    try {
      const p = await prepared();
      await converge(envOf(p), applied, p);
      writeFileSync(file, config('10.200.50.0/24, 10.200.70.0/24'));
      const q = await prepared();
      const direct = toPlanDocument(await observeAndPlan(envOf(q), applied, q.desired), file);
      const viaDaemon = await daemon.diff({ configPath: file });
      expect(viaDaemon.plan).toEqual(direct);
      expect(viaDaemon.changes).toBe(true);
    } finally {
      await daemon.stop({ teardown: false });
    }
  });
});
