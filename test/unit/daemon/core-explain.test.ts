/**
 * Explain through the daemon core over fake drivers (no root): the running config's rules and
 * destinations, the learned book (DaemonOptions.learned) for names and addresses, the process
 * read through the injected /proc reader; without a config there is nothing to explain.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { LearnedBook } from '../../../src/daemon/options.js';
import type { ProcSubject } from '../../../src/procs/explain.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { RecordingExec } from '../../helpers/exec.js';

const PROCS: Record<number, ProcSubject> = {
  10: { exe: '/usr/bin/app-web', uid: 1000, cgroup: '/awg/web' },
  11: { exe: '/usr/bin/curl', uid: 1000, cgroup: '/user.slice/session-1.scope' },
  12: { exe: '/usr/bin/curl', uid: 0, cgroup: '/awg/_exec-direct' },
};

const book: LearnedBook = {
  lookup: (a) =>
    a === '203.0.113.7'
      ? [{ rule: 'cdn', name: 'www.example.net', via: 'edge.cdn.test', expiresAt: 61_000 }]
      : [],
  addressesOf: (n) => (n === 'www.example.net' ? ['203.0.113.7'] : []),
  now: () => 20_000,
};

describe('daemon core: Explain', () => {
  let dir: string;
  let file: string;
  let daemon: Daemon | undefined;

  function make(configPath: string | null): Daemon {
    return new Daemon({
      ...(configPath ? { configPath } : {}),
      drivers: createFakeDriverSet(),
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      placement: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      learned: book,
      explainProc: (pid) => {
        const p = PROCS[pid];
        if (!p) throw new Error(`no process ${pid}`);
        return p;
      },
      mountinfo: () => '',
    });
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-core-explain-'));
    file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      oneTunnelConfig() +
        `  - name: cdn
    to: { domains: ["*.example.net"], cidrs: [192.0.2.0/24] }
    target: direct
`,
    );
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('walks the running config: the rule cgroup decides for its process; a name resolves through the learned book', async () => {
    daemon = make(file);
    let finished = false;
    daemon.subscribe((e) => {
      if (e.type === 'reconcile-finished') finished = true;
    });
    await daemon.start();
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (!finished) await new Promise((r) => setTimeout(r, 2));
    expect(finished).toBe(true);
    const web = await daemon.explain({ pid: 10, host: '198.51.100.1', port: 443, proto: 'tcp' });
    expect(web.source).toBe('daemon');
    expect(web.steps[0]).toMatchObject({
      rule: 'web',
      program: {
        fits: true,
        why: '/usr/bin/app-web fits match.name app-web; the process sits in awg/web',
      },
    });
    expect(web.decision.rule).toBe('web');

    const cdn = await daemon.explain({ pid: 11, host: 'www.example.net', port: 443, proto: 'tcp' });
    expect(cdn.destination).toEqual({
      host: 'www.example.net',
      addr: '203.0.113.7',
      port: 443,
      proto: 'tcp',
      resolvedBy: 'learned',
    });
    expect(cdn.steps[0]!.program.fits).toBe(false);
    expect(cdn.steps[1]!.destination).toEqual({
      fits: true,
      why: 'learned for www.example.net (*.example.net) via CNAME edge.cdn.test, expires in 41 s',
    });
    expect(cdn.decision).toEqual({
      rule: 'cdn',
      route: 'direct',
      why: 'rules[1] cdn: target direct',
    });

    const listed = await daemon.explain({ pid: 11, host: '192.0.2.9', port: 53, proto: 'udp' });
    expect(listed.steps[1]!.destination.why).toBe(
      '192.0.2.9 is in 192.0.2.0/24 (rules[1].to.cidrs)',
    );

    const exec = await daemon.explain({ pid: 12, host: '198.51.100.1', port: 80, proto: 'tcp' });
    expect(exec.decision).toMatchObject({ rule: '_exec-direct', route: 'direct' });
  });

  it('without a config the daemon has nothing to explain', async () => {
    daemon = make(null);
    await daemon.start();
    await expect(
      daemon.explain({ pid: 10, host: '192.0.2.1', port: 1, proto: 'tcp' }),
    ).rejects.toMatchObject({ kind: 'invalid-config' });
  });
});
