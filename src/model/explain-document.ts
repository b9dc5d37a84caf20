/**
 * The answer of `awg explain` (`--json`, the daemon's Explain, GET /api/explain), as a zod
 * schema: the one definition of it. The walk itself is model/explain.ts.
 */
import * as z from 'zod';

const Part = z.strictObject({
  fits: z.union([z.boolean(), z.literal('n/a')]).meta({
    description: '`n/a`: the rule has no such part, which holds for everything',
  }),
  why: z.string(),
});

export const ExplainStepDoc = z.strictObject({
  rule: z.string().meta({ description: 'rule name; `_exec-T` / `_exec-direct` for awg exec' }),
  index: z
    .number()
    .int()
    .meta({ description: 'index in the config’s rules; -1: an awg exec cgroup' }),
  enabled: z.boolean(),
  target: z.string(),
  program: Part,
  destination: Part,
  verdict: z.enum(['disabled', 'no-fit', 'decides', 'steps-aside']),
  why: z.string().optional(),
});

export const ExplainDocument = z
  .strictObject({
    source: z.enum(['daemon', 'direct']).meta({
      description:
        '`daemon`: the running config, tunnel health and learned addresses of the daemon; `direct`: the config of the last apply, link state, nothing learned',
    }),
    pid: z.number().int().min(1),
    subject: z.strictObject({
      exe: z.string().optional(),
      uid: z.number().int().min(0).optional(),
      cgroup: z.string().optional().meta({ description: 'cgroup v2 path, as /proc/PID/cgroup' }),
      flatpak: z.string().optional(),
    }),
    destination: z.strictObject({
      host: z.string().meta({ description: 'as asked: an address or a name' }),
      addr: z.string().meta({ description: 'the address the walk used' }),
      port: z.number().int().min(0).max(65535),
      proto: z.enum(['tcp', 'udp']),
      resolvedBy: z.enum(['literal', 'learned', 'getaddrinfo']).meta({
        description:
          '`learned`: an address the daemon learned for the name from DNS answers (what the app was given); `getaddrinfo`: the system resolver',
      }),
      others: z
        .array(z.string())
        .optional()
        .meta({ description: 'other addresses of the name, not walked' }),
    }),
    steps: z.array(ExplainStepDoc),
    decision: z.strictObject({
      rule: z.string().optional().meta({ description: 'absent: `default:` decided' }),
      route: z.string().meta({ description: 'a tunnel name, `direct` or `blocked`' }),
      why: z.string(),
    }),
  })
  .meta({ id: 'ExplainDocument', title: 'AwgExplanation' });
export type ExplainDocument = z.infer<typeof ExplainDocument>;
