/**
 * What the daemon reconciles with, without a daemon: the platform and its drivers load once
 * (the engine driver the in-process host's unless the drivers bring one), the reconcile
 * environment per config, the claims' fallbacks, and a corrupt record in the state directory
 * logged and told to the subscribers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DaemonEnv } from '../../../src/daemon/daemon-env.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import type { Claims, Driver, DriverSet } from '../../../src/resources/driver.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import type { Platform } from '../../../src/resources/registry.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';

const engineDriver = { kind: 'engine' } as unknown as Driver<'engine'>;
const other: Claims = { ...DEFAULT_CLAIMS, tableBase: 61000 };

describe('daemon env', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'awg-denv-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("loads the platform's drivers once, with the in-process engine driver", async () => {
    let loads = 0;
    const fakes = createFakeDriverSet();
    const platform = {
      drivers: async () => (loads++, fakes as Partial<DriverSet>),
    } as unknown as Platform;
    const exec = new RecordingExec();
    const env = new DaemonEnv({
      reporter: new MemoryReporter(),
      platform,
      exec,
      state: new MemoryStateStore(),
      engineDriver: () => engineDriver,
      current: () => undefined,
      onCorrupt: () => {},
    });
    expect(env.platform).toBeUndefined();
    await Promise.all([env.ready(), env.ready()]);
    expect(loads).toBe(1);
    expect(env.platform).toBe(platform);
    const e = env.envFor({ claims: other, secrets: new Map([['k', 'v']]) });
    expect(e.drivers.engine).toBe(engineDriver);
    expect(e.drivers.route).toBe(fakes.route);
    expect(e).toMatchObject({
      claims: other,
      state: env.state,
      exec,
      secrets: new Map([['k', 'v']]),
    });
  });

  it('drivers given (tests) are used as they are, their engine driver included', async () => {
    const fakes = createFakeDriverSet();
    const env = new DaemonEnv({
      reporter: new MemoryReporter(),
      platform: {} as Platform,
      drivers: fakes,
      state: new MemoryStateStore(),
      engineDriver: () => engineDriver,
      current: () => undefined,
      onCorrupt: () => {},
    });
    await env.ready();
    expect(env.envFor({ claims: DEFAULT_CLAIMS }).drivers.engine).toBe(fakes.engine);
  });

  it("the claims: the current config's, else the last apply's, else the defaults", () => {
    const cur: { claims?: Claims } = {};
    const env = new DaemonEnv({
      reporter: new MemoryReporter(),
      state: new MemoryStateStore(),
      engineDriver: () => engineDriver,
      current: () => cur.claims,
      onCorrupt: () => {},
    });
    expect(env.claims()).toEqual(DEFAULT_CLAIMS);
    env.applied.save({
      configFile: '/etc/awg/awg.yaml',
      appliedAt: 'then',
      claims: other,
      resources: [],
      outcome: 'converged',
    });
    expect(env.claims()).toEqual(other);
    cur.claims = { ...DEFAULT_CLAIMS, rulePriority: 6000 };
    expect(env.claims()).toBe(cur.claims);
  });

  it('a corrupt record: a warning in the log and an error for the subscribers, never a crash', () => {
    writeFileSync(join(dir, 'applied.json'), '{"configFile": "/etc/awg/awg.yaml", "appl');
    const reporter = new MemoryReporter();
    const told: string[] = [];
    const env = new DaemonEnv({
      reporter,
      stateDir: dir,
      engineDriver: () => engineDriver,
      current: () => undefined,
      onCorrupt: (m) => told.push(m),
    });
    expect(env.applied.load()).toBeUndefined();
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/^state record .*applied\.json is unusable/);
    expect(reporter.events).toEqual([{ type: 'warning', message: told[0] }]);
  });
});
