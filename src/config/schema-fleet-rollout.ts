/**
 * How a new revision rolls out over a fleet that follows one repository (docs/fleet.md "The
 * rollout model"): `fleet.waves` — which hosts apply it when, counted from the commit's
 * committer date (a commit a host first sees long after it: from that sighting) — and
 * `fleet.halt` — a brake that keeps every host still waiting where it is. The keys are spread
 * into the `fleet:` section (schema-fleet.ts); the daemon's gate (daemon/rollout-gate.ts)
 * reads them from the NEW revision's config: a commit declares how it rolls out. The
 * decision itself is pure: daemon/rollout-waves.ts.
 */
import * as z from 'zod';
import { LabelKey } from './overlay.js';
import { parseDuration } from './duration.js';
import { Duration } from './schema-rules.js';
import { ItemName, Text } from './schema-values.js';

const LabelValue = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9_./-]*$/, 'a label value holds letters, digits, ".", "_", "/" and "-"');

export const Wave = z
  .strictObject({
    name: ItemName()
      .optional()
      .meta({ description: 'Shown in status and events; defaults to `wave-<N>` (1-based).' }),
    hosts: z.array(z.string().min(1).max(255)).min(1).max(256).optional().meta({
      description:
        'Host name globs (as in an overlay selector); the wave takes the hosts any matches. The host is `--host` or the machine name.',
    }),
    labels: z
      .record(LabelKey, z.union([LabelValue, z.array(LabelValue).min(1).max(64)]))
      .optional()
      .meta({
        description:
          'Every label named must be set on the host to this value (or one of these values), as in an overlay selector.',
      }),
    percent: z.number().gt(0).lte(100).optional().meta({
      description:
        'Cumulative share of the fleet: the hosts whose slot (a stable hash of the host name, 0 ≤ slot < 100) is below it. `percent: 10` then `percent: 100` takes 10 %, then everyone else. Not with hosts/labels.',
    }),
    after: Duration.default('0s').meta({
      description:
        "When the wave is due, counted from the commit's committer date, or, for a commit this host first sees more than 10 min after that date (pushed late), from 10 min before it first saw it. Waves are in order: `after` never decreases.",
    }),
  })
  .refine((w) => w.percent === undefined || (w.hosts === undefined && w.labels === undefined), {
    error: 'a wave selects by `percent` or by `hosts`/`labels`, not both',
  })
  .meta({
    id: 'Wave',
    description:
      'A step of a rollout: the hosts it takes (the first wave in order that selects a host is its wave) and when it is due.',
  });
export type Wave = z.infer<typeof Wave>;

/** does the wave take every host still left (no selector, or 100 %)? */
export const takesAll = (w: Wave): boolean =>
  w.percent === 100 || (w.percent === undefined && w.hosts === undefined && w.labels === undefined);

export const Waves = z
  .array(Wave)
  .min(1)
  .max(16)
  .superRefine((waves, ctx) => {
    let after = 0;
    let percent = 0;
    waves.forEach((w, i) => {
      const ms = parseDuration(w.after) ?? 0;
      if (ms < after)
        ctx.addIssue({
          code: 'custom',
          path: [i, 'after'],
          message: `waves are in order: wave ${i + 1} cannot be due before wave ${i} (after ${w.after})`,
        });
      after = Math.max(after, ms);
      if (w.percent !== undefined) {
        if (w.percent < percent)
          ctx.addIssue({
            code: 'custom',
            path: [i, 'percent'],
            message: `percent waves are cumulative: ${w.percent} is below an earlier wave's ${percent}`,
          });
        percent = Math.max(percent, w.percent);
      }
    });
    const last = waves[waves.length - 1];
    if (last && !takesAll(last))
      ctx.addIssue({
        code: 'custom',
        path: [waves.length - 1],
        message:
          'the last wave must take every host left (`percent: 100`, or no hosts/labels/percent): otherwise some hosts would never apply a revision',
      });
  })
  .meta({
    id: 'Waves',
    description:
      "A host applies a new revision only when its wave is due (docs/fleet.md). A host's wave is the first that selects it; the last wave must take every host left.",
  });

export const Halt = z
  .union([
    z.boolean(),
    z.strictObject({
      file: Text().min(1).max(4096).meta({
        description:
          'A file, relative to this config file; while it exists in the checkout the rollout is halted.',
      }),
    }),
  ])
  .meta({
    id: 'Halt',
    description:
      '`true` (or a file that exists): no host still waiting for a revision moves on; hosts that already applied it stay. A brake only keeps hosts where they are, so it is honoured whoever signed the commit (`awg sync --allowed-signers` lets no unsigned commit into the checkout).',
  });
export type Halt = z.infer<typeof Halt>;

/** the rollout keys of `fleet:` (spread into schema-fleet.ts's object) */
export const fleetRolloutShape = {
  waves: Waves.optional(),
  halt: Halt.optional(),
};
