/**
 * Bandwidth limits (`limit:` on rules and tunnels): the rate grammar and its schema. A rate is
 * written `<number><unit>`: bits per second with `bit`/`bps` and an optional decimal prefix
 * (`k`, `M`, `G`, any case; ×1000), or bytes per second with `B/s` (`kB/s`, `MB/s`, `GB/s`;
 * ×8). The model reads it as bits per second (rateOf), rounded as roundRate says. Part of the model in schema.ts.
 */
import * as z from 'zod';

/** at most this many limits (classes) at once: rules with `limit:` and runtime limits together */
export const MAX_LIMITS = 32;
/** the local ports limited connections are source-NATed into (MAX_LIMITS ranges of 128) */
export const SHAPE_PORT_FIRST = 61440;
export const SHAPE_PORT_LAST = 65535;

/** 8 kbit/s: below this HTB's and dummynet's clocks cannot pace a packet of a full MTU usefully */
export const MIN_RATE = 8_000;
/** 100 Gbit/s */
export const MAX_RATE = 100_000_000_000;

const RATE_RE = /^(\d+(?:\.\d+)?) ?([kKmMgG]?)(bit|bps|B\/s)$/;
const PREFIX: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 };

/** A rate's value in bit/s, or why it is not one. */
export function parseRate(s: string): { ok: true; bits: number } | { ok: false; error: string } {
  const m = RATE_RE.exec(s);
  if (!m)
    return {
      ok: false,
      error: `"${s}" is not a rate: write a number and a unit, e.g. 20Mbit, 500kbit, 1.5Gbit or 2MB/s`,
    };
  const bits = roundRate(Number(m[1]) * PREFIX[m[2]!.toLowerCase()]! * (m[3] === 'B/s' ? 8 : 1));
  if (bits < MIN_RATE || bits > MAX_RATE)
    return {
      ok: false,
      error: `${s} is ${formatRate(bits)}; a limit must be between ${formatRate(MIN_RATE)} and ${formatRate(MAX_RATE)}`,
    };
  return { ok: true, bits };
}

/**
 * A rate as the shapers keep it: whole bytes per second (what tc and dummynet store), to six
 * significant digits above 1 Mbit/s (so that `tc class show`, which prints rates in units of
 * 1000 and drops the rest of a value of a million or more, reads back exactly what was set).
 */
export function roundRate(bits: number): number {
  let unit = 1;
  while (bits / unit >= 1e6) unit *= 1000;
  return unit === 1 ? Math.round(bits / 8) * 8 : Math.round(bits / unit) * unit;
}

/** A valid rate's bit/s (the schema has checked it). */
export function rateOf(s: string): number {
  const r = parseRate(s);
  if (!r.ok) throw new Error(r.error);
  return r.bits;
}

/** bit/s → the shortest exact form in the config's units (`20Mbit`, `1500kbit`, `8bit`) */
export function formatRate(bits: number): string {
  for (const [unit, f] of [
    ['Gbit', 1e9],
    ['Mbit', 1e6],
    ['kbit', 1e3],
  ] as const)
    if (bits >= f && bits % f === 0) return `${bits / f}${unit}`;
  if (bits >= 1e6) return `${bits / 1e6}Mbit`;
  if (bits >= 1e3) return `${bits / 1e3}kbit`;
  return `${bits}bit`;
}

export const Rate = z
  .string()
  .superRefine((s, ctx) => {
    const r = parseRate(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
  })
  .meta({
    id: 'Rate',
    description: `A rate: a number and a unit. Bits per second: \`bit\` or \`bps\` with an optional \`k\`, \`M\`, \`G\` (×1000, any case), e.g. \`500kbit\`, \`20Mbit\`, \`1.5Gbit\`; bytes per second: \`B/s\`, \`kB/s\`, \`MB/s\`, \`GB/s\` (×8). Between ${formatRate(MIN_RATE)} and ${formatRate(MAX_RATE)}. It counts IP packets with their headers (see docs/limits.md).`,
  });

export const Limit = z
  .strictObject({
    upload: Rate.optional().meta({ description: 'Most this traffic may send (egress).' }),
    download: Rate.optional().meta({ description: 'Most this traffic may receive (ingress).' }),
  })
  .refine(
    (l) => l.upload !== undefined || l.download !== undefined,
    'a limit needs `upload`, `download` or both',
  )
  .meta({
    id: 'Limit',
    description:
      'Bandwidth limits, shaped (queued and paced, not dropped at the limit): `upload`, `download` or both. See docs/limits.md for how and what is not shaped.',
  });
export type Limit = z.infer<typeof Limit>;
