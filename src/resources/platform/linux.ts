/**
 * The Linux platform: the realisation of the model's firewall policy as our nft table, and
 * (loaded on first use, so `awg validate` stays light) the drivers (linux-drivers.ts), the
 * facts the model needs, rtnetlink wakes and systemd.
 */
import { LINK_PREFIX } from '../../config/schema.js';
import type { DesiredModel, HostFacts } from '../../model/desired.js';
import { ids } from '../../model/identity.js';
import type { AnyResource, DesiredState } from '../../model/resources.js';
import { ENGINE_IO, PER_APP, type Platform } from './platform.js';
import { NFT_TABLE, toNftPolicy } from '../firewall/policy.js';
import { firewallSpec } from '../firewall/render.js';

/**
 * The model → Linux resources: everything as the model has it, plus our nft table rendered
 * from the policy, after the cgroups its `socket cgroupv2` matches name (nft resolves them
 * when the table loads).
 */
export function realiseLinux(m: DesiredModel, facts: HostFacts): DesiredState {
  const resources: AnyResource[] = [...m.resources];
  if (m.policy) {
    const nftPrefix =
      facts.cgroupMountPoint !== undefined ? facts.cgroupNftPrefix : (facts.cgroupNftPrefix ?? '');
    const nft = toNftPolicy(m.policy, {
      table: NFT_TABLE,
      linkPrefix: LINK_PREFIX,
      cgroup: {
        nftPrefix,
        rootDepth: facts.cgroupRootDepth ?? 0,
        ...(facts.cgroupMountPoint ? { mountPoint: facts.cgroupMountPoint } : {}),
      },
    });
    const cgroups = resources.filter((r) => r.kind === 'cgroup').map((r) => r.id);
    const firewall = ids.firewall(NFT_TABLE);
    resources.push({ kind: 'firewall', id: firewall, deps: cgroups, spec: firewallSpec(nft) });
    // net.netfilter.* appear when nf_conntrack loads, which our table's `ct` rules make it do
    for (const [i, r] of resources.entries())
      if (r.kind === 'sysctl' && r.spec.key.startsWith('net.netfilter.'))
        resources[i] = { ...r, deps: [...r.deps, firewall] };
  }
  return { resources, warnings: [...m.warnings] };
}

export const linuxPlatform: Platform = {
  os: 'linux',
  drivers: async (o) => (await import('./linux-drivers.js')).createLinuxDrivers(o),
  async probeFacts(c, { exec, env, state, persistEndpoints }) {
    const [{ probeLinuxFacts }, { createLinuxDnsDriver }, { ProcessExec }, { silentReporter }] =
      await Promise.all([
        import('../facts.js'),
        import('../dns/linux.js'),
        import('../../util/exec.js'),
        import('../../util/reporter.js'),
      ]);
    return probeLinuxFacts(
      c,
      createLinuxDnsDriver({ exec: new ProcessExec(silentReporter), env }),
      {
        exec,
        ...(env ? { env } : {}),
        ...(state ? { state } : {}),
        ...(persistEndpoints !== undefined ? { persist: persistEndpoints } : {}),
      },
    );
  },
  probeRouting: async (exec, o) => (await import('../facts.js')).linuxRouting(exec, o),
  realise: realiseLinux,
  watchNetwork: async (o) => (await import('../monitor/linux.js')).watchLinuxNetwork(o),
  watchSystem: async (o) => (await import('../monitor/system-bus.js')).watchSystemBus(o),
  trafficCounters: 'nft',
  engineIo: ENGINE_IO.linux,
  callerNatives: async () => (await import('../../native/peercred.js')).linuxCallerNatives,
  ownerNatives: async () => (await import('../../native/owner-lock.js')).linuxOwnerNatives,
  serviceManager: async () => (await import('../service/manager.js')).systemdManager,
  perApp: PER_APP.linux,
  engineHost: 'detached',
  upLinks: async () => (await import('../link/linux.js')).upLinks(),
  observeConflicts: async (o) => (await import('./linux-doctor.js')).gatherLinux(o),
};
