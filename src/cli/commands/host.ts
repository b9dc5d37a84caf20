/** Host-dependent inputs to the pure pipeline: facts and the firewall renderer. */
import type { PrepareOptions } from '../app.js';
import { probeHostFacts } from '../../resources/facts.js';

export async function hostPrepareOptions(): Promise<Pick<PrepareOptions, 'facts' | 'renderFirewall'>> {
  return { facts: await probeHostFacts() };
}
