/**
 * Durations as the config writes them (`refresh: 6h`): one or more `<digits><unit>` parts,
 * units ms, s, m, h, d, summed (`1h30m`, `1d12h`). The schema checks the shape
 * (schema-rules.ts Duration); this gives the value, and the age a status line prints. Pure.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** milliseconds of `30s`, `15m`, `6h`, `1d`, `1h30m`; undefined when it is not a duration */
export function parseDuration(s: string): number | undefined {
  if (!WHOLE.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** `2h 5m`, `41 s`, `3d 4h`: the two largest units of a span (for ages and intervals) */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const parts: [number, string][] = [
    [Math.floor(s / 86400), 'd'],
    [Math.floor((s % 86400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'm'],
    [s % 60, 's'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join(' ');
}

/** `fetched 2h 5m ago` style: the span from an ISO time to `now` */
export function ageOf(iso: string | undefined, now = Date.now()): string | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : `${formatSpan(now - t)} ago`;
}
