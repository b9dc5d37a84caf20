/**
 * macOS shaper driver: awg's dummynet pipes (`dnctl`; platform/darwin/dnctl.ts). The model's
 * shapers reach macOS as two resources, `shaper/dummynet/egress` and `…/ingress`
 * (resources/platform/darwin-shaping.ts), each a list of pipes: class n's pipe is
 * dnPipeNumber(n, direction), at the class's rate, with a queue of 10 ms at that rate.
 *
 * Ownership: dummynet pipes carry no marker, so a pipe is ours while the state record
 * `darwin-pipes` holds it (written before `dnctl pipe N config`, removed after `delete`; the
 * route driver's rule). A pipe in awg's number range that the record does not hold (another
 * program's, or one a lost record forgot) is a conflict, never configured or deleted; pipes
 * outside the range (Network Link Conditioner's, a user's) are not looked at.
 *
 * Observe reads `dnctl list`: a recorded pipe counts as the recorded class when the kernel
 * prints exactly what that class configures (bandwidth as dnctl rounds it, queue, no delay,
 * no loss); otherwise the kernel's rate is reported (drift, repaired by configuring it again,
 * which keeps the packets queued in it). A recorded pipe someone deleted is missing (drift).
 * `dnctl pipe N config` reconfigures a pipe in place, so an update never deletes first.
 *
 * When the record is unusable (set aside by the state store), the copy the last converged
 * apply kept (`owned`) stands in for it, for the pipes that still hold exactly what it
 * configured; so `down` after a torn record still deletes them.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, Resource, ShaperClass, ShaperSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import { isObject } from '../../util/shape.js';
import {
  APPLIED_STATE_KEY,
  appliedCopy,
  checkedRecord,
  type StateStore,
} from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  dnctlArgs,
  dnPipeNumber,
  dnQueueKB,
  formatDnBandwidth,
  formatDnQueueBytes,
  isOurPipeNumber,
  parseDnctlError,
  parseDnctlList,
  type DnPipe,
} from '../../platform/darwin/dnctl.js';

export const PIPES_STATE_KEY = 'darwin-pipes';

/** one pipe of ours: the resource it belongs to and the class it carries */
export interface PipeRecord {
  id: string;
  n: number;
  name: string;
  rate: number;
  queueKB: number;
  ports: [number, number];
}
export type PipesRecord = Record<string, PipeRecord>;

function isPipesRecord(x: unknown): x is PipesRecord {
  return (
    isObject(x) &&
    Object.entries(x).every(
      ([k, v]) =>
        /^\d+$/.test(k) &&
        isOurPipeNumber(Number(k)) &&
        isObject(v) &&
        typeof v.id === 'string' &&
        typeof v.n === 'number' &&
        typeof v.name === 'string' &&
        typeof v.rate === 'number' &&
        typeof v.queueKB === 'number' &&
        Array.isArray(v.ports) &&
        v.ports.length === 2 &&
        v.ports.every((p) => typeof p === 'number'),
    )
  );
}

/** does the kernel's pipe print exactly what `r` configures? */
function holds(k: DnPipe, r: Pick<PipeRecord, 'rate' | 'queueKB'>): boolean {
  return (
    k.bandwidthText === formatDnBandwidth(r.rate) &&
    k.queueText === formatDnQueueBytes(r.queueKB * 1024) &&
    k.delayMs === 0 &&
    k.plr === undefined
  );
}

async function listPipes(exec: Pick<Exec, 'read'>): Promise<Map<number, DnPipe>> {
  const r = await exec.read('dnctl', dnctlArgs.list(), { allowFail: true });
  const err = r.code !== 0 ? parseDnctlError(r.stderr) : undefined;
  if (r.code !== 0)
    throw new AwgError(
      err?.kind === 'permission' ? 'permission' : 'driver',
      `dnctl list failed (exit ${r.code}): ${err?.message ?? r.stderr.trim()}`,
      err?.kind === 'permission'
        ? { hint: 'awg configures dummynet as root: run it with sudo' }
        : {},
    );
  try {
    return new Map(parseDnctlList(r.stdout).map((p) => [p.pipe, p]));
  } catch (e) {
    throw new AwgError('driver', (e as Error).message);
  }
}

/**
 * The record; when unusable, the applied record's copy, for the pipes that still print what
 * it configured (reported as recovered).
 */
function loadRecord(s: StateStore, kernel: ReadonlyMap<number, DnPipe>): PipesRecord {
  const r = checkedRecord(s, PIPES_STATE_KEY, isPipesRecord, 'the macOS dummynet driver');
  if (r) return r;
  const copy = appliedCopy(s, 'shaper');
  if (!isPipesRecord(copy)) return {};
  const out: PipesRecord = {};
  for (const [k, v] of Object.entries(copy)) {
    const p = kernel.get(Number(k));
    if (p && holds(p, v)) out[k] = v;
  }
  if (Object.keys(out).length)
    s.recovered(
      PIPES_STATE_KEY,
      APPLIED_STATE_KEY,
      `the dummynet pipes ${Object.keys(out).join(', ')} (they hold what it configured)`,
    );
  return out;
}

const directionOf = (id: string): 'egress' | 'ingress' =>
  id.endsWith('/ingress') ? 'ingress' : 'egress';

export function createDarwinShaperDriver(opts: { exec: Pick<Exec, 'read'> }): Driver<'shaper'> {
  return {
    kind: 'shaper',
    async observe(scope: ObserveScope): Promise<ObserveResult<'shaper'>> {
      const kernel = await listPipes(opts.exec);
      const rec = loadRecord(scope.state, kernel);
      const byId = new Map<string, ShaperClass[]>();
      const device = new Map<string, string>();
      for (const [k, v] of Object.entries(rec)) {
        const list = byId.get(v.id) ?? [];
        byId.set(v.id, list);
        const p = kernel.get(Number(k));
        if (!p) continue; // deleted by someone: missing (drift)
        list.push({
          n: v.n,
          name: v.name,
          rate: holds(p, v) ? v.rate : (p.bandwidth ?? -1),
          ports: v.ports,
        });
      }
      const foreign: ForeignObject[] = [];
      for (const r of scope.desired.resources) {
        if (r.kind !== 'shaper') continue;
        const spec = r.spec as ShaperSpec;
        device.set(r.id, spec.device);
        for (const c of spec.classes) {
          const pipe = dnPipeNumber(c.n, spec.direction);
          if (kernel.has(pipe) && !rec[pipe])
            foreign.push({
              kind: 'shaper',
              id: r.id,
              relation: 'conflict',
              description: `dummynet pipe ${pipe} exists and is not awg's (awg uses pipes ${dnPipeNumber(1, 'egress')}-${dnPipeNumber(96, 'ingress')}); delete it with \`dnctl pipe delete ${pipe}\` if nothing needs it`,
            });
        }
      }
      const resources: Resource<'shaper'>[] = [];
      for (const [id, classes] of [...byId].sort(([a], [b]) => a.localeCompare(b))) {
        if (!classes.length) continue;
        const dir = directionOf(id);
        const spec: ShaperSpec = {
          device: device.get(id) ?? id.split('/')[1]!,
          direction: dir,
          classes: classes.sort((a, b) => a.n - b.n),
        };
        if (ids.shaper(spec) !== id) continue;
        resources.push({ kind: 'shaper', id, deps: [], spec });
      }
      return { resources, foreign };
    },

    async apply(change: Change<'shaper'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const kernel = await listPipes(ctx.exec);
      const rec = loadRecord(ctx.state, kernel);
      const save = () => {
        if (!ctx.dryRun) ctx.state.set(PIPES_STATE_KEY, rec);
      };
      let changed = false;
      const dnctl = async (args: string[], what: string) => {
        const r = await ctx.exec.mutate('dnctl', args, { allowFail: true });
        if (ctx.dryRun || r.code === 0) return undefined;
        return (
          parseDnctlError(r.stderr) ?? {
            kind: 'other' as const,
            message: `${what}: exit ${r.code}`,
          }
        );
      };
      const remove = async (pipe: string) => {
        if (kernel.has(Number(pipe))) {
          const err = await dnctl(dnctlArgs.delete(Number(pipe)), `dnctl pipe delete ${pipe}`);
          if (err && err.kind !== 'no-such-pipe') {
            save();
            throw new AwgError(
              err.kind === 'permission' ? 'permission' : 'driver',
              `dnctl pipe delete ${pipe}: ${err.message}`,
            );
          }
          changed = true;
        }
        delete rec[pipe];
      };
      const id = change.id;
      if (change.action === 'delete' || !change.after) {
        for (const [pipe, v] of Object.entries(rec)) if (v.id === id) await remove(pipe);
        save();
        return changed ? 'changed' : 'unchanged';
      }
      const after = change.after;
      const wanted = new Set<string>();
      for (const c of after.classes) {
        const pipe = dnPipeNumber(c.n, after.direction);
        const key = String(pipe);
        wanted.add(key);
        const want: PipeRecord = {
          id,
          n: c.n,
          name: c.name,
          rate: c.rate,
          queueKB: dnQueueKB(c.rate),
          ports: c.ports,
        };
        const k = kernel.get(pipe);
        const mine = rec[key];
        if (k && (!mine || mine.id !== id))
          throw new AwgError(
            'conflict',
            `dummynet pipe ${pipe} exists and is not awg's${mine ? ` (awg holds it for ${mine.id})` : ''}; awg does not touch it`,
            { hint: `delete it with \`dnctl pipe delete ${pipe}\` if nothing needs it` },
          );
        if (k && mine && holds(k, want)) {
          if (
            mine.name !== want.name ||
            mine.n !== want.n ||
            mine.ports.join() !== want.ports.join()
          ) {
            rec[key] = want;
            save();
          }
          continue;
        }
        // recorded before it exists: a crash in between leaves a record, never an unowned pipe
        rec[key] = want;
        save();
        const err = await dnctl(
          dnctlArgs.config({ pipe, bandwidth: want.rate, queueKB: want.queueKB }),
          `dnctl pipe ${pipe} config`,
        );
        if (err) {
          if (!k) delete rec[key];
          save();
          throw new AwgError(
            err.kind === 'permission' ? 'permission' : 'driver',
            `dnctl pipe ${pipe} config (${c.name}, ${c.rate} bit/s): ${err.message}`,
          );
        }
        changed = true;
      }
      for (const [pipe, v] of Object.entries(rec))
        if (v.id === id && !wanted.has(pipe)) await remove(pipe);
      save();
      return changed ? 'changed' : 'unchanged';
    },

    async owned(state: StateStore): Promise<PipesRecord | undefined> {
      const r = checkedRecord(state, PIPES_STATE_KEY, isPipesRecord, 'the macOS dummynet driver');
      return r && Object.keys(r).length ? r : undefined;
    },
  };
}
