/**
 * `awg processes` reading the host itself: the config of the last apply as that apply
 * rendered it (its host selection: a fleet daemon's `--host`), and `--all` never asks the
 * daemon (it lists the rules' processes only).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listProcessesDirect, processesCommand } from '../../../src/cli/commands/processes.js';
import type { Config } from '../../../src/config/schema.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import type { ProcessLister } from '../../../src/procs/list.js';
import type { Platform } from '../../../src/resources/registry.js';
import { FileStateStore } from '../../../src/util/state.js';
import { FakeCore } from '../daemon/server-fake-core.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** a fleet config: the tunnel's key and address come from the host's overlay */
function fleetHost(): { dir: string; stateDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'awg-procs-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'awg.yaml'),
    `version: 1
tunnels:
  vpn:
    type: wireguard
    peers:
      - publicKey: "${KEY}"
        endpoint: 192.0.2.1:51820
        allowedIPs: [10.0.0.0/24]
overlays:
  - when: { hosts: ["fleet-a"] }
    file: a.yaml
`,
  );
  writeFileSync(
    join(dir, 'a.yaml'),
    `tunnels:
  vpn:
    privateKey: "${KEY}"
    addresses: [10.0.0.2/24]
rules:
  - name: work
    match: { name: curl }
    target: vpn
`,
  );
  const stateDir = join(dir, 'state');
  new AppliedStore(new FileStateStore(stateDir)).save({
    configFile: join(dir, 'awg.yaml'),
    appliedAt: '2026-11-22T05:00:00.000Z',
    claims: DEFAULT_CLAIMS,
    resources: [],
    outcome: 'converged',
    selection: { host: 'fleet-a', labels: {}, os: 'linux' },
  });
  return { dir, stateDir };
}

const platform = {
  perApp: 'cgroup',
  upLinks: async () => new Set<string>(),
} as unknown as Platform;

function lister(): { l: ProcessLister; seen: { config?: Pick<Config, 'rules'>; all?: boolean } } {
  const seen: { config?: Pick<Config, 'rules'>; all?: boolean } = {};
  return {
    seen,
    l: {
      list(c, _root, o) {
        seen.config = c;
        if (o.all !== undefined) seen.all = o.all;
        return [
          { pid: 7, name: 'sshd', path: '/usr/sbin/sshd', route: 'direct', ppid: 1, cgroup: '/' },
        ];
      },
    },
  };
}

describe('awg processes, direct', () => {
  it('loads the config of the last apply for the host it selected (a daemon --host), not this machine', async () => {
    const { stateDir } = fleetHost();
    const { l, seen } = lister();
    await listProcessesDirect({ stateDir, platform, processes: l });
    expect(seen.config?.rules.map((r) => r.name)).toEqual(['work']);
  });

  it('--all reads the host even when a daemon answers', async () => {
    const { dir, stateDir } = fleetHost();
    const core = new FakeCore();
    const socket = join(dir, 'awg.sock');
    const server = await startApiServer(core, { socketPath: socket });
    cleanups.push(() => server.close());
    const { l, seen } = lister();
    let out = '';
    const io = { out: (s: string) => (out += s), err: () => {}, colour: false };
    const code = await processesCommand(io, {
      json: true,
      all: true,
      socket,
      stateDir,
      platform,
      processes: l,
    });
    expect(code).toBe(0);
    expect(core.calls).toEqual([]);
    expect(seen.all).toBe(true);
    expect(JSON.parse(out)).toEqual([expect.objectContaining({ pid: 7, name: 'sshd' })]);
  });
});
