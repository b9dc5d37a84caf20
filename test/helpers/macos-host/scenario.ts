/**
 * A test rig for the macOS host model: a config file in a temp directory, a model host and
 * engine, the darwin platform whose drivers get the model's Exec and engine, a FileStateStore,
 * and the pipeline's own steps (prepare → hostEnv → converge / observe+plan / teardown).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { converge } from '../../../src/pipeline/converge.js';
import { hostEnv, type HostEnv } from '../../../src/pipeline/host.js';
import { prepare, type Prepared } from '../../../src/pipeline/prepare.js';
import { teardown } from '../../../src/pipeline/teardown.js';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import type { Platform } from '../../../src/resources/platform/platform.js';
import { FileStateStore } from '../../../src/util/state.js';
import type { Reporter, ReportEvent } from '../../../src/util/reporter.js';
import { plan as makePlan } from '../../../src/reconciler/plan.js';
import { observeWith } from '../../../src/reconciler/observe.js';
import { wgKeyPair } from '../awg.js';
import { ModelEngines } from './engine.js';
import { MacHost } from './model.js';
import type { Packet } from './pf-eval.js';

const me = wgKeyPair();
const peer = wgKeyPair();
const peer2 = wgKeyPair();
export const ENDPOINT = '198.51.100.7';
const key = new Uint8Array(32).fill(7);

/** a WireGuard tunnel as the default route, its DNS as the system's, leak protection */
/** `v6`: a second peer for ::/0 at [2001:db8:2::7] and `ipv6: tunnel` */
export function macConfig(
  o: { killSwitch?: boolean | 'allowLan'; mtu?: number; v6?: boolean } = {},
): string {
  const ks =
    o.killSwitch === 'allowLan'
      ? '{ enabled: true, allowLan: true }'
      : o.killSwitch === false
        ? 'off'
        : 'on';
  return `version: 1
tunnels:
  home:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.66.0.2/32${o.v6 ? ', fd66::2/128' : ''}]
    mtu: ${o.mtu ?? 1420}
    dns: [10.66.0.1]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: ${ENDPOINT}:51820
        allowedIPs: [0.0.0.0/0]
${o.v6 ? `      - publicKey: "${peer2.publicKey}"\n        endpoint: "[2001:db8:2::7]:51820"\n        allowedIPs: [::/0]\n` : ''}default: home
killSwitch: ${ks}
dns:
  system: default-tunnel
  leakProtection: true
ipv6: ${o.v6 ? 'tunnel' : 'block'}
`;
}

export const WEB: Packet = {
  dir: 'out',
  iface: 'en0',
  family: 4,
  proto: 'tcp',
  dst: '93.184.216.34',
  dport: 443,
};
export const ENDPOINT_UDP: Packet = {
  dir: 'out',
  iface: 'en0',
  family: 4,
  proto: 'udp',
  dst: ENDPOINT,
  dport: 51820,
};
export const DNS_OUT: Packet = {
  dir: 'out',
  iface: 'en0',
  family: 4,
  proto: 'udp',
  dst: '8.8.8.8',
  dport: 53,
};

export class Rig {
  readonly dir = mkdtempSync(join(tmpdir(), 'awg-machost-'));
  readonly file = join(this.dir, 'awg.yaml');
  readonly host: MacHost;
  readonly engines: ModelEngines;
  readonly platform: Platform;
  readonly state: FileStateStore;
  readonly events: ReportEvent[] = [];
  private readonly reporter: Reporter = { report: (e) => void this.events.push(e) };

  constructor(yaml: string = macConfig(), host: MacHost = MacHost.laptop()) {
    this.host = host;
    this.engines = new ModelEngines(host);
    const engines = this.engines;
    // the model's engines stand in for the daemon's: a one-shot `awg apply` may start them
    // here (a real Mac refuses it: darwinPlatform.engineHost is 'daemon'; host-model-apply.test.ts)
    this.platform = {
      ...darwinPlatform,
      engineHost: 'detached',
      drivers: async ({ exec }) => ({ ...createDarwinDrivers({ exec }), engine: engines }),
    };
    this.state = new FileStateStore(join(this.dir, 'state'));
    this.write(yaml);
  }

  write(yaml: string): void {
    writeFileSync(this.file, yaml, { mode: 0o600 });
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  async prep(): Promise<Prepared> {
    const r = await prepare(this.file, {
      platform: this.platform,
      probe: true,
      state: this.state,
      exec: this.host,
      persistEndpoints: true,
      fingerprintKey: () => key,
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.prepared;
  }

  async env(p: Prepared): Promise<HostEnv> {
    return hostEnv({
      platform: this.platform,
      state: this.state,
      reporter: this.reporter,
      claims: p.claims,
      secrets: p.secrets,
      exec: this.host,
    });
  }

  /** `awg apply`: converge, with the number of mutations it made */
  async apply() {
    const p = await this.prep();
    const e = await this.env(p);
    const before = this.host.mutations;
    const ctx = await converge(e, e.applied, p);
    return { ctx, mutations: this.host.mutations - before };
  }

  /** `awg diff`: the plan's changes against the host now */
  async diff() {
    const p = await this.prep();
    const e = await this.env(p);
    const observed = await observeWith(e, p.desired);
    return makePlan(p.desired, observed, {
      lastApplied: e.applied.load()?.resources,
    }).changes.filter((c) => c.action !== 'noop');
  }

  /** `awg down` */
  async down() {
    const p = await this.prep();
    const e = await this.env(p);
    return teardown(e, e.applied);
  }

  /** the host's mutations so far, in order */
  mutationLines(): string[] {
    return this.host.log.filter((l) => l.kind === 'mutate').map((l) => l.line);
  }
}

/** `rig(yaml?, host?)` for a describe block: every rig it makes is cleaned up after each test */
export function rigsCleanedAfterEach(): (yaml?: string, host?: MacHost) => Rig {
  const rigs: Rig[] = [];
  afterEach(() => {
    for (const r of rigs.splice(0)) r.cleanup();
  });
  return (yaml, host) => {
    const r = new Rig(yaml, host);
    rigs.push(r);
    return r;
  };
}
