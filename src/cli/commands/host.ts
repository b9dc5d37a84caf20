/** Host-dependent inputs to the pure pipeline (facts probed before planning). */
import type { Config } from '../../config/schema.js';
import type { HostFacts } from '../../model/desired.js';
import { probeHostFacts } from '../../resources/facts.js';
import { createLinuxDnsDriver } from '../../resources/dns/linux.js';
import { ProcessExec } from '../../util/exec.js';
import { silentReporter } from '../../util/reporter.js';

export function hostFacts(c: Config): Promise<HostFacts> {
  const dns = process.platform === 'linux' ? createLinuxDnsDriver({ exec: new ProcessExec(silentReporter) }) : undefined;
  return probeHostFacts(c, dns);
}
