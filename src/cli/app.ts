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
import type { FirewallPolicy } from '../resources/firewall/policy.js';
import type { Claims } from '../resources/driver.js';
import { LINK_PREFIX } from '../config/schema.js';

export interface Prepared {
  file: string;
  config: Config;
  issues: Issue[];
  desired: DesiredState & { allocation: Allocation; policy: FirewallPolicy };
  claims: Claims;
  secrets: Map<string, string>;
}

export interface PrepareOptions {
  skipSecrets?: boolean;
  facts?: HostFacts;
  /** probe facts that depend on the config (endpoint resolution) */
  probeFacts?: (c: Config) => Promise<HostFacts>;
  env?: NodeJS.ProcessEnv;
  /** tunnels not up now (the daemon's health view; see BuildOptions.down) */
  down?: ReadonlySet<string>;
}

export const BAND_SIZE = 100;

/** The cgroup subtree is host-wide (not per network namespace): tests claim their own. */
export function cgroupRootFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.AWG_CGROUP_ROOT;
  return v && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v) ? v : CGROUP_ROOT;
}

export function claimsFromConfig(c: Config): Claims {
  return {
    routeProtocol: c.routing.routeProtocol,
    tableBase: c.routing.tableBase,
    bandSize: BAND_SIZE,
    rulePriority: c.routing.rulePriority,
    fwmarkMask: c.routing.fwmarkMask,
    nftTable: NFT_TABLE,
    linkPrefix: LINK_PREFIX,
    cgroupRoot: cgroupRootFromEnv(),
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
  cgroupRoot: cgroupRootFromEnv(),
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
  const facts = opts.facts ?? (opts.probeFacts ? await opts.probeFacts(loaded.config) : undefined);
  try {
    desired = buildDesired(loaded.config, { facts, secrets, cgroupRoot: cgroupRootFromEnv(opts.env ?? process.env), ...(opts.down ? { down: opts.down } : {}) });
  } catch (e) {
    return { ok: false, issues: [...issues, { file, path: 'routing', message: (e as Error).message, severity: 'error' }] };
  }
  return { ok: true, prepared: { file, config: loaded.config, issues, desired, claims: claimsFromConfig(loaded.config), secrets } };
}
