/**
 * The real daemon core (fake drivers, no root) behind the real API server: no private key
 * or pre-shared key reaches Status, Diff/Apply plans, Watch events, the daemon's log, the
 * CLI's output or the metrics. The grep can fail: both keys are in the config it read.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { eventsCommand } from '../../../src/cli/commands/events.js';
import { TextReporter, type Io } from '../../../src/cli/output.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import { createMetrics } from '../../../src/daemon/metrics.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';

const me = wgKeyPair();
const peer = wgKeyPair();
const PSK = Buffer.alloc(32, 7).toString('base64');

const config = (allowed: string) => `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "${peer.publicKey}"
        presharedKey: "${PSK}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [${allowed}]
killSwitch: on
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('no secret crosses the API', () => {
  it('Status, plans, events, daemon log, CLI output and metrics never contain the keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-secrets-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const fileA = join(dir, 'a.yaml');
    const fileB = join(dir, 'b.yaml');
    writeFileSync(fileA, config('10.200.50.0/24'));
    writeFileSync(fileB, config('10.200.50.0/24, 10.201.0.0/24'));

    let seen = '';
    const io: Io = { out: (s) => (seen += s), err: (s) => (seen += s), colour: false };
    const daemon = new Daemon({
      configPath: fileA,
      drivers: createFakeDriverSet(),
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      reporter: new TextReporter(io, true),
    });
    daemon.subscribe((e) => (seen += `${e.at} ${formatEvent(e)}\n${JSON.stringify(e)}\n`));
    const metrics = createMetrics(daemon);
    const socket = join(dir, 'awg.sock');
    const server = await startApiServer(daemon, { socketPath: socket });
    cleanups.push(async () => {
      metrics.close();
      await server.close();
      await daemon.stop({ teardown: false });
    });
    await daemon.start();

    const cli = async (...args: string[]) => {
      const code = await main(['node', 'awg', ...args, '--socket', socket], io);
      return code;
    };
    let stopEvents!: () => void;
    const events = eventsCommand(
      io,
      { socket, json: true },
      { until: new Promise<void>((r) => (stopEvents = r)) },
    );
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while ((await cli('status', '--json')) !== 0) await new Promise((r) => setTimeout(r, 10));
    expect(await cli('status')).toBe(0);
    expect(await cli('diff', '-f', fileB, '--json', '-v')).toBe(2);
    expect(await cli('diff', '-f', fileB, '-v')).toBe(2);
    expect(await cli('apply', '-f', fileB, '--json')).toBe(0);
    expect(await cli('apply', '-f', fileA, '--confirm-timeout', '60')).toBe(0);
    expect(await cli('confirm')).toBe(0);
    seen += await metrics.render();
    stopEvents();
    expect(await events).toBe(0);

    // the data flowed: the public key, the routes and the engine's key fingerprint are there
    expect(readFileSync(fileA, 'utf8')).toContain(me.privateKey);
    expect(seen).toContain(peer.publicKey);
    expect(seen).toContain('10.201.0.0/24');
    expect(seen).toContain('"type":"reconcile-finished"');
    expect(seen).toContain('awg_reconcile_total');
    for (const secret of [me.privateKey, PSK]) {
      expect(seen).not.toContain(secret);
      expect(seen).not.toContain(secret.slice(0, 20));
      expect(seen).not.toContain(Buffer.from(secret, 'base64').toString('hex').slice(0, 24));
    }
  });
});
