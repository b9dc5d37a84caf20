/**
 * The pipeline shared by validate, diff and apply (one code path: `diff` shows exactly the
 * plan `apply` executes): load → secrets → host facts → desired state.
 */
import type { Issue } from '../errors.js';
import { hasErrors, loadConfigFile } from '../config/load.js';
import { checkSecrets } from '../config/secrets.js';
import type { Config } from '../config/schema.js';
import { buildDesired, CGROUP_ROOT, NFT_TABLE, type HostFacts } from '../model/desired.js';
import type { Allocation } from '../model/alloc.js';
import type { DesiredState } from '../model/resources.js';
import type { FirewallIntent } from '../model/firewall-intent.js';
import type { Claims } from '../resources/driver.js';
import { LINK_PREFIX } from '../config/schema.js';

export interface Prepared {
  file: string;
  config: Config;
  issues: Issue[];
  desired: DesiredState & { allocation: Allocation; intent: FirewallIntent };
  claims: Claims;
  secrets: Map<string, string>;
}

export interface PrepareOptions {
  skipSecrets?: boolean;
  facts?: HostFacts;
  renderFirewall?: (i: FirewallIntent) => string;
  env?: NodeJS.ProcessEnv;
}

export const BAND_SIZE = 100;

export function claimsFromConfig(c: Config): Claims {
  return {
    routeProtocol: c.routing.routeProtocol,
    tableBase: c.routing.tableBase,
    bandSize: BAND_SIZE,
    rulePriority: c.routing.rulePriority,
    fwmarkMask: c.routing.fwmarkMask,
    nftTable: NFT_TABLE,
    linkPrefix: LINK_PREFIX,
    cgroupRoot: CGROUP_ROOT,
  };
}

export const DEFAULT_CLAIMS: Claims = {
  routeProtocol: 0xa7,
  tableBase: 52000,
  bandSize: BAND_SIZE,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: NFT_TABLE,
  linkPrefix: LINK_PREFIX,
  cgroupRoot: CGROUP_ROOT,
};

export async function prepare(file: string, opts: PrepareOptions = {}): Promise<{ ok: true; prepared: Prepared } | { ok: false; issues: Issue[] }> {
  const loaded = await loadConfigFile(file);
  if (!loaded.config) return { ok: false, issues: loaded.issues };
  const issues = [...loaded.issues];
  let secrets = new Map<string, string>();
  if (!opts.skipSecrets) {
    const s = checkSecrets(loaded.config, { configFile: file, env: opts.env ?? process.env }, loaded.positions);
    issues.push(...s.issues);
    secrets = s.values;
    if (hasErrors(s.issues)) return { ok: false, issues };
  }
  let desired;
  try {
    desired = buildDesired(loaded.config, { facts: opts.facts, secrets, renderFirewall: opts.renderFirewall });
  } catch (e) {
    return { ok: false, issues: [...issues, { file, path: 'routing', message: (e as Error).message, severity: 'error' }] };
  }
  return { ok: true, prepared: { file, config: loaded.config, issues, desired, claims: claimsFromConfig(loaded.config), secrets } };
}
