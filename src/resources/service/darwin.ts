/**
 * macOS service driver: LaunchDaemons `com.awg.*` in the system domain.
 *
 * ServiceSpec.name is the launchd label, unitText the plist (platform/darwin/plist.ts).
 * Labels under `com.awg.` are ours by namespace; any other label is refused. Observed
 * unitText is the plist file's content while the job is loaded; a plist that exists but is
 * not loaded is reported with a note appended, so the planner updates it and apply
 * bootstraps it. Bootout is by service target (`system/<label>`), which works even after
 * the plist file is gone; "No such process" there means already gone. `Bootstrap failed:
 * 5: Input/output error` is ambiguous in launchd (already loaded, or a plist launchd
 * refuses — wrong owner/mode, bad XML): it is reported with both causes.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { Resource, ServiceSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  classifyLaunchctl,
  launchctlArgs,
  parseLaunchctlPrint,
  plistPath,
  type LaunchctlPrint,
} from '../../platform/darwin/launchctl.js';

export const LABEL_PREFIX = 'com.awg.';
export const NOTE_NOT_LOADED = '<!-- awg: not loaded in launchd -->\n';

export interface DarwinServiceOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
  /** labels to look for besides the desired ones (e.g. from the last apply) */
  labels?: string[];
}

interface Seen {
  text?: string;
  loaded: boolean;
  print?: LaunchctlPrint;
}

function checkLabel(label: string): void {
  if (!label.startsWith(LABEL_PREFIX) || !/^[A-Za-z0-9_.-]+$/.test(label))
    throw new AwgError('bug', `launchd label ${label} is not under ${LABEL_PREFIX}`);
}

async function see(exec: Pick<Exec, 'read'>, label: string): Promise<Seen> {
  const f = await exec.read('cat', [plistPath(label)], { allowFail: true });
  const p = await exec.read('launchctl', launchctlArgs.print(label), { allowFail: true });
  const out = classifyLaunchctl(p.code, p.stderr, p.code === 0 ? '' : p.stdout);
  const s: Seen = { loaded: out.kind === 'ok' };
  if (f.code === 0) s.text = f.stdout;
  const print = out.kind === 'ok' ? parseLaunchctlPrint(p.stdout) : undefined;
  if (print) s.print = print;
  return s;
}

async function launchctl(
  ctx: ApplyContext,
  args: string[],
  tolerate: string[] = [],
): Promise<void> {
  const r = await ctx.exec.mutate('launchctl', args, { allowFail: true });
  if (ctx.dryRun) return;
  const o = classifyLaunchctl(r.code, r.stderr, r.stdout);
  if (o.kind === 'ok' || tolerate.includes(o.kind)) return;
  const msg = `launchctl ${args.join(' ')}: ${o.message}`;
  if (o.kind === 'io-error' && args[0] === 'bootstrap')
    throw new AwgError(
      'driver',
      `${msg} (launchd says this when the job is already loaded, or when it refuses the plist: owner must be root:wheel, mode 644, valid XML)`,
    );
  throw new AwgError(o.kind === 'usage' ? 'bug' : 'driver', msg);
}

export function createDarwinServiceDriver(opts: DarwinServiceOptions): Driver<'service'> {
  return {
    kind: 'service',
    async observe(scope: ObserveScope): Promise<ObserveResult<'service'>> {
      const labels = new Set(opts.labels ?? []);
      for (const r of scope.desired.resources)
        if (r.kind === 'service') labels.add((r.spec as ServiceSpec).name);
      const resources: Resource<'service'>[] = [];
      const facts: Record<string, unknown> = {};
      for (const label of [...labels].sort()) {
        if (!label.startsWith(LABEL_PREFIX)) continue;
        const s = await see(opts.exec, label);
        if (s.print)
          facts[`launchd:${label}`] = {
            state: s.print.state,
            pid: s.print.pid,
            lastExitCode: s.print.lastExitCode,
          };
        if (s.text === undefined) continue;
        const unitText = s.loaded ? s.text : `${s.text}${NOTE_NOT_LOADED}`;
        resources.push({
          kind: 'service',
          id: ids.service(label),
          spec: { name: label, unitText },
          deps: [],
        });
      }
      return { resources, foreign: [], facts };
    },

    async apply(change: Change<'service'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const label = (change.after ?? change.before)?.name;
      if (!label) throw new AwgError('bug', `${change.action} ${change.id} without a spec`);
      checkLabel(label);
      const s = await see(ctx.exec, label);
      const path = plistPath(label);
      if (change.action === 'delete') {
        let changed = false;
        if (s.loaded) {
          await launchctl(ctx, launchctlArgs.bootout(label), ['not-loaded']);
          changed = true;
        }
        if (s.text !== undefined) {
          await ctx.exec.mutate('rm', ['-f', path]);
          changed = true;
        }
        return changed ? 'changed' : 'unchanged';
      }
      const after = change.after!;
      if (s.loaded && s.text === after.unitText) return 'unchanged';
      if (s.text !== after.unitText) {
        if (s.loaded) await launchctl(ctx, launchctlArgs.bootout(label), ['not-loaded']);
        // tee as root creates the file root:wheel 0644 (umask 022), which launchd requires
        await ctx.exec.mutate('tee', [path], { input: after.unitText, display: `write ${path}` });
      }
      await launchctl(ctx, launchctlArgs.bootstrap(label));
      return 'changed';
    },
  };
}
