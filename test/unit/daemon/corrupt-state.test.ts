/**
 * The daemon starting over a corrupt state directory logs it and keeps running (before:
 * the constructor threw a SyntaxError, so `awg daemon` exited and systemd restarted it
 * forever with the kill switch closed). Fake drivers, real files in a temporary state dir.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';

const me = wgKeyPair();
const peer = wgKeyPair();
const CONFIG = `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.50.0/24]
`;

describe('daemon over a corrupt state directory', () => {
  let dir: string;
  let stateDir: string;
  let daemon: Daemon | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-corrupt-'));
    stateDir = join(dir, 'state');
    mkdirSync(stateDir);
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function make(configPath?: string): {
    daemon: Daemon;
    reporter: MemoryReporter;
    events: DaemonEvent[];
  } {
    const reporter = new MemoryReporter();
    const events: DaemonEvent[] = [];
    const x = new Daemon({
      ...(configPath ? { configPath } : {}),
      stateDir,
      reporter,
      drivers: createFakeDriverSet(),
      exec: new RecordingExec(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    });
    x.subscribe((e) => events.push(e));
    return { daemon: x, reporter, events };
  }

  async function until(
    events: DaemonEvent[],
    pred: (e: DaemonEvent) => boolean,
  ): Promise<DaemonEvent> {
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    for (;;) {
      const hit = events.find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  it('a torn applied record: logged as a warning, moved aside; the daemon starts, applies and records again', async () => {
    writeFileSync(join(stateDir, 'applied.json'), '{"configFile": "/etc/awg/awg.yaml", "appl');
    const m = make();
    daemon = m.daemon;
    const warnings = m.reporter.events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^state record ${stateDir}/applied.json is unusable \\(not valid JSON: .*\\); moved aside to ${stateDir}/applied.json.corrupt-\\S+ and ignored$`,
      ),
    );
    await daemon.start();
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, CONFIG);
    const r = await daemon.apply({ configPath: file });
    expect(r.outcome).toBe('converged');
    expect((await daemon.status()).state).toBe('converged');
    const names = readdirSync(stateDir).sort();
    expect(names.filter((n) => n.includes('.corrupt-'))).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(stateDir, 'applied.json'), 'utf8'))).toMatchObject({
      configFile: file,
      outcome: 'converged',
    });
  });

  it('with --config and an empty applied record (torn by a crash) the first run converges; down removes everything', async () => {
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, CONFIG);
    writeFileSync(join(stateDir, 'applied.json'), '');
    const m = make(file);
    daemon = m.daemon;
    await daemon.start();
    await until(m.events, (e) => e.type === 'reconcile-finished');
    expect(m.events.find((e) => e.type === 'reconcile-finished')).toMatchObject({
      outcome: 'converged',
    });
    // the applied record was set aside in the constructor (before anyone subscribed): logged
    expect(
      m.reporter.events
        .filter((e) => e.type === 'warning')
        .map((e) => (e as { message: string }).message)
        .join('\n'),
    ).toContain('applied.json is unusable (empty)');
    const down = await daemon.down();
    expect(down.removed.length).toBeGreaterThan(0);
    expect(existsSync(join(stateDir, 'applied.json'))).toBe(false);
  });
});
