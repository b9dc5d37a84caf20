/** The identifiers awg claims on this host (routing band, marks, table, link prefix, cgroup subtree). */
import { BAND_SIZE, LINK_PREFIX, type Config } from '../config/schema.js';
import { CGROUP_ROOT } from '../model/desired.js';
import type { Claims } from '../resources/driver.js';
import { DEFAULT_NFT_TABLE } from '../resources/reads.js';

export { BAND_SIZE };

/** The cgroup subtree is host-wide (not per network namespace): tests claim their own. */
export function cgroupRootFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.AWG_CGROUP_ROOT;
  return v && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v) ? v : CGROUP_ROOT;
}

export function claimsFromConfig(c: Config, env: NodeJS.ProcessEnv = process.env): Claims {
  return {
    routeProtocol: c.routing.routeProtocol,
    tableBase: c.routing.tableBase,
    bandSize: BAND_SIZE,
    rulePriority: c.routing.rulePriority,
    fwmarkMask: c.routing.fwmarkMask,
    nftTable: DEFAULT_NFT_TABLE,
    linkPrefix: LINK_PREFIX,
    cgroupRoot: cgroupRootFromEnv(env),
  };
}

/** the claims of a config with every `routing` default (down and status without a config or record) */
export const DEFAULT_CLAIMS: Claims = {
  routeProtocol: 0xa7,
  tableBase: 52000,
  bandSize: BAND_SIZE,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: DEFAULT_NFT_TABLE,
  linkPrefix: LINK_PREFIX,
  cgroupRoot: cgroupRootFromEnv(),
};
