/**
 * Semantic checks of the `fleet:` section (schema-fleet.ts): what the schema cannot say alone.
 */
import type { PathKey } from './positions.js';
import { parseDuration } from './duration.js';
import { MAX_VERIFY_MS, MIN_VERIFY_MS, type Fleet } from './schema-fleet.js';

export function checkFleet(
  f: Fleet | undefined,
  tunnels: readonly string[],
  err: (path: PathKey[], message: string) => void,
  warn: (path: PathKey[], message: string) => void,
): void {
  if (!f) return;
  const base: PathKey[] = ['fleet', 'verify'];
  const v = f.verify;
  const within = parseDuration(v.within);
  if (within === undefined) err([...base, 'within'], `"${v.within}" is not a duration`);
  else if (within < MIN_VERIFY_MS || within > MAX_VERIFY_MS)
    err([...base, 'within'], `within ${v.within} must be between 1s and 1h`);
  if (Array.isArray(v.tunnels)) {
    const seen = new Set<string>();
    v.tunnels.forEach((t, i) => {
      if (!tunnels.includes(t))
        err(
          [...base, 'tunnels', i],
          `unknown tunnel "${t}" (known: ${tunnels.join(', ') || 'none'})`,
        );
      else if (seen.has(t)) warn([...base, 'tunnels', i], `tunnel "${t}" is named twice`);
      seen.add(t);
    });
  }
  const reach = new Set<string>();
  v.reach.forEach((r, i) => {
    if (reach.has(r)) warn([...base, 'reach', i], `"${r}" is named twice`);
    reach.add(r);
  });
}
