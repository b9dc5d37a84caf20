/**
 * What the host facts say this host cannot do for the config, as located findings (like
 * config/semantic.ts, but needing probed facts): an engine it cannot run. Pure.
 */
import type { Finding } from '../config/semantic.js';
import { isWgLike, type Config } from '../config/schema.js';
import type { HostFacts } from './desired.js';

export function hostFindings(c: Config, facts: HostFacts): Finding[] {
  const out: Finding[] = [];
  const p = facts.engineProblems;
  if (!p) return out;
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (!isWgLike(t) || t.engine === undefined || t.engine === 'embedded') continue;
    if (t.engine === 'kernel') {
      if (p.kernel)
        out.push({ path: ['tunnels', name, 'engine'], message: p.kernel, severity: 'error' });
      continue;
    }
    const why = p.external?.[t.engine.external];
    if (why)
      out.push({ path: ['tunnels', name, 'engine', 'external'], message: why, severity: 'error' });
  }
  return out;
}
