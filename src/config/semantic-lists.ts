/**
 * Semantic checks of `to.lists` URL entries (config/semantic.ts runs them): `refresh` is at
 * least a minute, `via` names a tunnel of the config, and a list fetched over plain http
 * without a `sha256` pin is a warning (anyone on the path can change what it routes). Pure.
 */
import { parseDuration } from './duration.js';
import type { Config } from './schema.js';
import type { PathKey } from './positions.js';

/** a located finding (semantic.ts Finding's shape; that module runs these) */
interface Finding {
  path: PathKey[];
  message: string;
  severity: 'error' | 'warning';
}

/** the shortest `refresh` the daemon accepts */
export const MIN_REFRESH_MS = 60_000;

export function checkListRefs(c: Config): Finding[] {
  const out: Finding[] = [];
  const tunnels = Object.keys(c.tunnels);
  c.rules.forEach((r, i) =>
    (r.to?.lists ?? []).forEach((ref, j) => {
      if (typeof ref === 'string' || !('url' in ref)) return;
      const at = ['rules', i, 'to', 'lists', j];
      const ms = parseDuration(ref.refresh);
      if (ms !== undefined && ms < MIN_REFRESH_MS)
        out.push({
          path: [...at, 'refresh'],
          message: `refresh ${ref.refresh} is shorter than the minimum of 1m (a list server is asked at most once a minute)`,
          severity: 'error',
        });
      if (ref.via !== undefined && !Object.hasOwn(c.tunnels, ref.via))
        out.push({
          path: [...at, 'via'],
          message: `unknown tunnel "${ref.via}" (known: ${tunnels.join(', ') || 'none'}); leave \`via\` out to fetch directly`,
          severity: 'error',
        });
      if (/^http:/i.test(ref.url) && ref.sha256 === undefined)
        out.push({
          path: [...at, 'url'],
          message:
            'a list fetched over plain http without a `sha256` pin: anyone on the path can change what this rule routes (use https, or pin the content)',
          severity: 'warning',
        });
    }),
  );
  return out;
}
