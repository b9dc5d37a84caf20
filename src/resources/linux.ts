/**
 * The Linux platform: the drivers (iproute2 and nft through Exec, TUN and sysfs through
 * koffi and the file system), the facts the model needs, the realisation of the model's
 * firewall policy as our nft table, rtnetlink wakes and systemd.
 */
import { LINK_PREFIX } from '../config/schema.js';
import type { DesiredModel, HostFacts } from '../model/desired.js';
import { ids } from '../model/identity.js';
import type { AnyResource, DesiredState } from '../model/resources.js';
import type { Platform } from './platform.js';
import { createLinuxAddressDriver } from './address/linux.js';
import { createLinuxCgroupDriver } from './cgroup/linux.js';
import { createLinuxDnsDriver } from './dns/linux.js';
import { createProcessEngineDriver } from './engine/process-host.js';
import { probeLinuxFacts } from './facts.js';
import { createLinuxFirewallDriver } from './firewall/linux.js';
import { NFT_TABLE, toNftPolicy } from './firewall/policy.js';
import { firewallSpec } from './firewall/render.js';
import { createLinuxLinkDriver } from './link/linux.js';
import { watchLinuxNetwork } from './monitor/linux.js';
import { createLinuxRouteDriver } from './route/linux.js';
import { createLinuxRuleDriver } from './rule/linux.js';
import { systemdManager } from './service/manager.js';
import { createLinuxSysctlDriver } from './sysctl/linux.js';
import { ProcessExec } from '../util/exec.js';
import { silentReporter } from '../util/reporter.js';

/**
 * The model → Linux resources: everything as the model has it, plus our nft table rendered
 * from the policy, after the cgroups its `socket cgroupv2` matches name (nft resolves them
 * when the table loads).
 */
export function realiseLinux(m: DesiredModel, facts: HostFacts): DesiredState {
  const resources: AnyResource[] = [...m.resources];
  if (m.policy) {
    const nftPrefix = facts.cgroupMountPoint !== undefined ? facts.cgroupNftPrefix : (facts.cgroupNftPrefix ?? '');
    const nft = toNftPolicy(m.policy, {
      table: NFT_TABLE,
      linkPrefix: LINK_PREFIX,
      cgroup: { nftPrefix, rootDepth: facts.cgroupRootDepth ?? 0, ...(facts.cgroupMountPoint ? { mountPoint: facts.cgroupMountPoint } : {}) },
    });
    const cgroups = resources.filter((r) => r.kind === 'cgroup').map((r) => r.id);
    resources.push({ kind: 'firewall', id: ids.firewall(NFT_TABLE), deps: cgroups, spec: firewallSpec(nft) });
  }
  return { resources, warnings: [...m.warnings] };
}

export const linuxPlatform: Platform = {
  os: 'linux',
  drivers: ({ exec, env }) => ({
    sysctl: createLinuxSysctlDriver(),
    cgroup: createLinuxCgroupDriver(),
    firewall: createLinuxFirewallDriver({ exec }),
    link: createLinuxLinkDriver({ exec }),
    address: createLinuxAddressDriver({ exec }),
    route: createLinuxRouteDriver({ exec }),
    rule: createLinuxRuleDriver({ exec }),
    dns: createLinuxDnsDriver({ exec, env }),
    engine: createProcessEngineDriver({ env }),
  }),
  probeFacts: (c, { env }) => probeLinuxFacts(c, createLinuxDnsDriver({ exec: new ProcessExec(silentReporter), env })),
  realise: realiseLinux,
  watchNetwork: watchLinuxNetwork,
  serviceManager: () => systemdManager,
};

