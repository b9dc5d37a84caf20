/**
 * macOS firewall driver: one PF anchor `com.awg/<table>` per FirewallSpec.
 *
 * The ruleset is rendered whole (platform/darwin/pf-render.ts), loaded atomically with
 * `pfctl -a com.awg/<table> -f -`, and read back with `-sr`. pfctl normalises rules on
 * read-back, so the StateStore (`darwin-pf`) keeps both the rendered text and the read-back;
 * observe reports the rendered text while the kernel still shows exactly that read-back, and
 * the kernel's own text otherwise (drift). Anchors are ours by namespace (`com.awg/`).
 *
 * Three more things must hold, and observe appends a note line to the ruleset when one does
 * not, so the planner sees a difference and apply repairs it:
 * - PF is enabled under our own reference token (`pfctl -E`; released with `pfctl -X` when
 *   the last anchor goes). `-E`/`-X` count references, so we never disable PF under
 *   another owner and `pfctl -e`'s "already enabled" never arises.
 * - The main ruleset evaluates `anchor "com.awg/*"`. Without ioctls (DIOCCHANGERULE) the only
 *   way to add it is to reload the main ruleset: /etc/pf.conf plus our hook line.
 *   On teardown /etc/pf.conf is reloaded as-is, only if our hook is still there. Either
 *   reload drops anchors that services inserted at run time (e.g. com.apple.internet-sharing
 *   on 15.x); apply warns when it sees such anchors.
 * - Tunnel macros are bound to the utuns the engines hold now (utun numbers change when an
 *   engine restarts).
 * - An anchor with translation rules (the flow router's `rdr`, platform/darwin/pf-flow.ts) is
 *   evaluated only if the main ruleset also has `rdr-anchor "com.awg/*"` among its
 *   translation rules (read with `-sn`); the same reload adds it (pf-flow.ts withRdrAnchor),
 *   and those rules are read back with `-a … -sn`. Teardown flushes an anchor's translation
 *   rules and tables too (`-F rules` leaves them).
 * After every rule change the state table is flushed (`pfctl -F states`): PF otherwise keeps
 * passing connections it approved under the old rules.
 *
 * Kill switch on (the spec's `boot`): the kill switch from boot is kept in the state directory
 * (platform/darwin/pf-boot.ts: a main ruleset and the anchor with every tunnel unbound) for
 * the LaunchDaemon com.awg.killswitch. Part of the observed spec like Linux's boot copy: a
 * missing or edited copy is drift; it goes with the kill switch and on `down`. The boot job's
 * own `-E` reference (its token in its log) is released once ours, the hook and the anchor are
 * in place, or on `down`; while PF holds it, observe appends a note (drift) so a run does that.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { FirewallSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import {
  APPLIED_STATE_KEY,
  appliedCopy,
  checkedRecord,
  stateFile,
  type StateStore,
} from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  parsePfAnchors,
  parsePfEnable,
  parsePfLoad,
  parsePfReferences,
  parsePfRelease,
  parsePfRules,
} from '../../platform/darwin/pfctl.js';
import {
  ANCHOR_ROOT,
  MAIN_ANCHOR_RULE,
  anchorPath,
  MAIN_RDR_ANCHOR_RULE,
  bindPfLinks,
  hasRdr,
  linkMacro,
  pfctlArgs,
  renderMainRuleset,
} from '../../platform/darwin/pf-render.js';
import { withRdrAnchor } from '../../platform/darwin/pf-flow.js';
import {
  BOOT_ANCHOR_FILE,
  BOOT_CONF_FILE,
  BOOT_LOG_FILE,
  bootTokens,
  isOurBootConf,
  parseBootAnchor,
  renderBootAnchor,
  renderBootConf,
} from '../../platform/darwin/pf-boot.js';
import { readUtunRegistry } from '../../platform/darwin/utun.js';
import { pfOpenError, privilegeKind } from '../../platform/darwin/privilege.js';
import { isObject, isStrings } from '../../util/shape.js';

export const PF_STATE_KEY = 'darwin-pf';

interface AnchorRecord {
  ruleset: string;
  readback: string[];
  /** macro → utun bound at load */
  links: Record<string, string>;
  /** `-a … -sn` after the load (anchors with translation rules only) */
  natReadback?: string[];
}
interface PfRecord {
  token?: string;
  anchors: Record<string, AnchorRecord>;
}

export const NOTE_NO_TOKEN = "# awg: pf is not enabled under awg's reference token";
export const NOTE_NO_HOOK = `# awg: the main ruleset does not evaluate ${ANCHOR_ROOT}/*`;
export const NOTE_NO_RDR_HOOK = `# awg: the main ruleset does not evaluate the translation rules of ${ANCHOR_ROOT}/*`;
export const NOTE_REBOUND = '# awg: tunnel links moved to other utuns since the anchor was loaded';
export const NOTE_BOOT_REF = "# awg: pf still holds the boot kill switch's reference";

/** A boot kill switch file (stateFile), or `unreadable (…)` */
const bootFiles = {
  path: stateFile.path,
  read(state: StateStore, name: string): string | undefined {
    try {
      return stateFile.read(state, name);
    } catch (e) {
      return `unreadable (${(e as Error).message})\n`;
    }
  },
  write: stateFile.write,
  remove: stateFile.remove,
};

/** The boot copy as observed: the rendered anchor kept for `table` (or why it is not usable); undefined: none. */
function observedBoot(state: StateStore): { table?: string; boot: string } | undefined {
  const anchor = bootFiles.read(state, BOOT_ANCHOR_FILE);
  const conf = bootFiles.read(state, BOOT_CONF_FILE);
  if (anchor === undefined && conf === undefined) return undefined;
  const parsed = anchor !== undefined ? parseBootAnchor(anchor) : undefined;
  if (!parsed) return { boot: 'unreadable (not written by awg)\n' };
  if (
    conf === undefined ||
    !isOurBootConf(conf, parsed.table, bootFiles.path(state, BOOT_ANCHOR_FILE))
  )
    return {
      table: parsed.table,
      boot: `unreadable (${bootFiles.path(state, BOOT_CONF_FILE)} is missing or not ours)\n`,
    };
  return parsed;
}

/** the boot job's `-E` tokens that PF still holds (not ours) */
function liveBootTokens(
  state: StateStore,
  refs: readonly string[],
  own: string | undefined,
): string[] {
  return bootTokens(bootFiles.read(state, BOOT_LOG_FILE) ?? '').filter(
    (t) => t !== own && refs.includes(t),
  );
}

export interface DarwinFirewallOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
  pfConf?: string;
}

/** the record's shape (a token goes to `pfctl -X`, anchor names and read-backs to pfctl) */
function isPfRecord(x: unknown): x is PfRecord {
  if (!isObject(x) || !isObject(x.anchors)) return false;
  if (x.token !== undefined && !(typeof x.token === 'string' && /^\d+$/.test(x.token)))
    return false;
  return Object.entries(x.anchors).every(
    ([name, a]) =>
      name.startsWith(`${ANCHOR_ROOT}/`) &&
      isObject(a) &&
      typeof a.ruleset === 'string' &&
      isStrings(a.readback) &&
      isObject(a.links) &&
      Object.values(a.links).every((v) => typeof v === 'string') &&
      (a.natReadback === undefined || isStrings(a.natReadback)),
  );
}

/**
 * Our record. When it is unusable (moved aside and reported by the state store, or the wrong
 * shape: set aside here), the copy the last converged apply kept (`owned`): its anchor records
 * (the anchors are ours by name anyway), and its reference token only while PF holds that
 * token now. That apply verified PF enabled under that token, and we take another only after
 * PF lost it; so a token PF still holds is ours, unless since that apply PF lost ours and gave
 * the same 64-bit value to another program's `-E` (docs/platform-macos.md). Without both
 * records the token stays unknown and PF enabled under it: no `pfctl -X` by guess.
 */
async function load(s: StateStore, exec: Pick<Exec, 'read'>): Promise<PfRecord> {
  const r = checkedRecord(s, PF_STATE_KEY, isPfRecord, 'the macOS PF driver');
  if (r) return r;
  const copy = appliedCopy(s, 'firewall');
  if (!isPfRecord(copy)) return { anchors: {} };
  const held =
    copy.token !== undefined &&
    parsePfReferences(await pf(exec, pfctlArgs.showReferences())).some(
      (x) => x.token === copy.token,
    );
  const anchors = Object.keys(copy.anchors);
  const what = [
    ...(held ? [`PF's reference token ${copy.token} (PF holds it)`] : []),
    ...(anchors.length ? [`the records of ${anchors.join(', ')}`] : []),
    ...(copy.token !== undefined && !held
      ? [`not its reference token ${copy.token}: PF no longer holds it`]
      : []),
  ];
  if (what.length) s.recovered(PF_STATE_KEY, APPLIED_STATE_KEY, what.join('; '));
  return { anchors: copy.anchors, ...(held ? { token: copy.token } : {}) };
}
const tableOf = (anchor: string) => anchor.slice(ANCHOR_ROOT.length + 1);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

async function pf(exec: Pick<Exec, 'read'>, args: string[]): Promise<string> {
  const r = await exec.read('pfctl', args, { allowFail: true });
  // without /dev/pf nothing printed describes the ruleset: an empty read here would be taken
  // for a lost token and hook (drift) and "repaired"
  const open = r.code !== 0 ? pfOpenError(r.stderr) : undefined;
  if (open)
    throw new AwgError(
      privilegeKind(open),
      `pfctl ${args.join(' ')}: cannot open /dev/pf: ${open}`,
      {
        hint: 'awg changes PF, routes and DNS as root: run it with sudo',
      },
    );
  return r.stdout;
}

/** macro → utun for the macros a ruleset uses (utun '' when unbound). */
function binding(ruleset: string, state: StateStore): Record<string, string> {
  const reg = readUtunRegistry(state);
  const byMacro = new Map(Object.entries(reg).map(([link, o]) => [linkMacro(link), o.ifname]));
  const used = [...new Set([...ruleset.matchAll(/\$([A-Za-z0-9_]+)/g)].map((m) => m[1]!))].sort();
  return Object.fromEntries(used.map((m) => [m, byMacro.get(m) ?? '']));
}

/**
 * A tunnel macro now names another utun than the anchor was loaded with. A macro whose
 * engine is gone (no utun now) is not: its rules match nothing, which is what they should do
 * while the tunnel is down (a kept kill switch stays verified), and the next engine start
 * that gets another utun shows up here.
 */
function rebound(loaded: Record<string, string>, now: Record<string, string>): boolean {
  return Object.entries(now).some(([m, ifn]) => ifn !== '' && loaded[m] !== ifn);
}

interface Snapshot {
  hooked: boolean;
  /** `rdr-anchor "com.awg/*"` among the main translation rules (read only when asked) */
  rdrHooked: boolean;
  tokenHeld: boolean;
  /** every `-E` token PF holds */
  refs: string[];
  mainAnchors: string[];
  mainOther: string[];
}

async function snapshot(exec: Pick<Exec, 'read'>, rec: PfRecord, rdr = false): Promise<Snapshot> {
  const main = parsePfRules(await pf(exec, pfctlArgs.showMainRules()));
  const refs = parsePfReferences(await pf(exec, pfctlArgs.showReferences()));
  const nat = rdr ? parsePfRules(await pf(exec, pfctlArgs.showMainNat())).rules : [];
  return {
    hooked: main.rules.includes(MAIN_ANCHOR_RULE),
    rdrHooked: nat.includes(MAIN_RDR_ANCHOR_RULE),
    tokenHeld: rec.token !== undefined && refs.some((r) => r.token === rec.token),
    refs: refs.map((r) => r.token),
    mainAnchors: main.anchors.filter((a) => a.kind === 'anchor').map((a) => a.name),
    mainOther: main.rules.filter((r) => !/^(?:\w+-)?anchor "/.test(r)),
  };
}

export function createDarwinFirewallDriver(opts: DarwinFirewallOptions): Driver<'firewall'> {
  const pfConf = opts.pfConf ?? '/etc/pf.conf';

  return {
    kind: 'firewall',
    async observe(scope: ObserveScope): Promise<ObserveResult<'firewall'>> {
      const rec = await load(scope.state, opts.exec);
      const names = new Set(Object.keys(rec.anchors));
      for (const a of parsePfAnchors(await pf(opts.exec, pfctlArgs.listAnchors())))
        if (a.startsWith(`${ANCHOR_ROOT}/`)) names.add(a);
      for (const r of scope.desired.resources)
        if (r.kind === 'firewall') names.add(anchorPath((r.spec as FirewallSpec).table));
      const wantsRdr =
        Object.values(rec.anchors).some((a) => hasRdr(a.ruleset)) ||
        scope.desired.resources.some(
          (r) => r.kind === 'firewall' && hasRdr((r.spec as FirewallSpec).ruleset),
        );
      const snap = await snapshot(opts.exec, rec, wantsRdr);
      const boot = observedBoot(scope.state);
      const bootRef = liveBootTokens(scope.state, snap.refs, rec.token).length > 0;
      if (boot?.table !== undefined) names.add(anchorPath(boot.table));
      const resources: Resource<'firewall'>[] = [];
      for (const name of [...names].sort()) {
        const a = rec.anchors[name];
        const rules = parsePfRules(await pf(opts.exec, pfctlArgs.showAnchorRules(name))).rules;
        const rdr = a !== undefined && hasRdr(a.ruleset);
        // the translation rules count as the anchor's rules: flushed or changed, they are drift
        const nat = rdr
          ? parsePfRules(await pf(opts.exec, pfctlArgs.showAnchorNat(name))).rules
          : [];
        const natSame = !rdr || same(a.natReadback ?? [], nat);
        // an empty anchor is ours only while we recorded it (someone flushed it, or a load
        // failed after the hook and the token were taken): reported, so repair, rollback and
        // `down` still release the token and the hook
        const table = tableOf(name);
        const bootHere =
          boot && (boot.table === undefined || boot.table === table) ? boot.boot : undefined;
        if (!rules.length && !a && bootHere === undefined) continue;
        let text: string;
        if (a && natSame && same(a.readback, rules))
          text = !rebound(a.links, binding(a.ruleset, scope.state))
            ? a.ruleset
            : `${a.ruleset}${NOTE_REBOUND}\n`;
        else text = `${[...nat, ...rules].join('\n')}\n`;
        if (!snap.tokenHeld) text += `${NOTE_NO_TOKEN}\n`;
        if (!snap.hooked) text += `${NOTE_NO_HOOK}\n`;
        if (rdr && !snap.rdrHooked) text += `${NOTE_NO_RDR_HOOK}\n`;
        if (bootRef) text += `${NOTE_BOOT_REF}\n`;
        resources.push({
          kind: 'firewall',
          id: ids.firewall(table),
          spec: {
            family: 'inet',
            table,
            ruleset: text,
            ...(bootHere !== undefined ? { boot: bootHere } : {}),
          },
          deps: [],
        });
      }
      const foreign: ForeignObject[] = snap.mainAnchors
        .filter((n) => !n.startsWith('com.apple') && !n.startsWith(`${ANCHOR_ROOT}/`))
        .map((n) => ({
          kind: 'firewall',
          id: `firewall/pf/${n}`,
          relation: 'competitor',
          description: `PF anchor "${n}" in the main ruleset belongs to another program`,
        }));
      if (snap.mainOther.length)
        foreign.push({
          kind: 'firewall',
          id: 'firewall/pf/main',
          relation: 'competitor',
          description: `the PF main ruleset has ${snap.mainOther.length} rule(s) outside anchors (e.g. "${snap.mainOther[0]}")`,
        });
      return {
        resources,
        foreign,
        facts: { pf: { tokenHeld: snap.tokenHeld, hooked: snap.hooked } },
      };
    },

    async apply(change: Change<'firewall'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const rec = await load(ctx.state, ctx.exec);
      const save = () => {
        if (!ctx.dryRun) ctx.state.set(PF_STATE_KEY, rec);
      };
      let changed = false;

      /**
       * The boot copy follows the spec (written after the anchor it copies, removed without a
       * kill switch). A failure never undoes the anchor that runs: a warning, and drift the
       * next run repairs.
       */
      const syncBoot = async (table: string, boot: string | undefined): Promise<void> => {
        const anchorPathOnDisk = bootFiles.path(ctx.state, BOOT_ANCHOR_FILE);
        const have = observedBoot(ctx.state);
        try {
          if (boot === undefined) {
            if (!have) return;
            for (const f of [BOOT_CONF_FILE, BOOT_ANCHOR_FILE])
              if (
                bootFiles.read(ctx.state, f) !== undefined &&
                ctx.exec.record(`rm ${bootFiles.path(ctx.state, f)} (the kill switch at boot)`)
              )
                bootFiles.remove(ctx.state, f);
            changed = true;
            return;
          }
          const conf = renderBootConf(
            (await ctx.exec.read('cat', [pfConf])).stdout,
            table,
            anchorPathOnDisk,
          );
          const anchorText = renderBootAnchor(table, boot);
          if (
            bootFiles.read(ctx.state, BOOT_ANCHOR_FILE) !== anchorText &&
            ctx.exec.record(`write ${anchorPathOnDisk} (the kill switch at boot, mode 0600)`)
          ) {
            bootFiles.write(ctx.state, BOOT_ANCHOR_FILE, anchorText);
            changed = true;
          }
          if (
            bootFiles.read(ctx.state, BOOT_CONF_FILE) !== conf &&
            ctx.exec.record(
              `write ${bootFiles.path(ctx.state, BOOT_CONF_FILE)} (${pfConf} + our hook + the boot anchor, mode 0600)`,
            )
          ) {
            bootFiles.write(ctx.state, BOOT_CONF_FILE, conf);
            changed = true;
          }
        } catch (e) {
          ctx.reporter.report({
            type: 'warning',
            message: `the kill switch's boot copy in ${ctx.state.dir} could not be ${boot === undefined ? 'removed' : 'written'}: ${(e as Error).message}`,
          });
        }
      };
      /** the boot job's reference, once ours stands in for it (or on down); then its log goes */
      const releaseBootRefs = async (): Promise<void> => {
        const refs = parsePfReferences(await pf(ctx.exec, pfctlArgs.showReferences())).map(
          (r) => r.token,
        );
        for (const t of liveBootTokens(ctx.state, refs, rec.token)) {
          await ctx.exec.mutate('pfctl', pfctlArgs.releaseRef(t), { allowFail: true });
          changed = true;
        }
        if (
          bootFiles.read(ctx.state, BOOT_LOG_FILE) !== undefined &&
          ctx.exec.record(`rm ${bootFiles.path(ctx.state, BOOT_LOG_FILE)}`)
        )
          bootFiles.remove(ctx.state, BOOT_LOG_FILE);
      };

      const flushAnchor = async (name: string) => {
        if (parsePfRules(await pf(ctx.exec, pfctlArgs.showAnchorRules(name))).rules.length) {
          await ctx.exec.mutate('pfctl', pfctlArgs.flushAnchor(name), { allowFail: true });
          changed = true;
        }
        // the router's rdr rules and its skip table stay after `-F rules`
        if (rec.anchors[name] && hasRdr(rec.anchors[name].ruleset)) {
          await ctx.exec.mutate('pfctl', pfctlArgs.flushAnchorNat(name), { allowFail: true });
          await ctx.exec.mutate('pfctl', pfctlArgs.flushAnchorTables(name), { allowFail: true });
          changed = true;
        }
        delete rec.anchors[name];
      };

      if (
        change.action === 'delete' ||
        (change.action === 'replace' &&
          change.before &&
          change.after &&
          change.before.table !== change.after.table)
      ) {
        if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
        await flushAnchor(anchorPath(change.before.table));
        if (change.action === 'delete') {
          await syncBoot(change.before.table, undefined);
          if (!Object.keys(rec.anchors).length) {
            await releaseBootRefs();
            if (rec.token) {
              const r = await ctx.exec.mutate('pfctl', pfctlArgs.releaseRef(rec.token), {
                allowFail: true,
              });
              changed = true;
              const res = ctx.dryRun ? undefined : parsePfRelease(`${r.stderr}\n${r.stdout}`);
              if (res?.status === 'error')
                throw new AwgError(privilegeKind(res.message), `pfctl -X: ${res.message}`);
              delete rec.token;
            }
            if (
              parsePfRules(await pf(ctx.exec, pfctlArgs.showMainRules())).rules.includes(
                MAIN_ANCHOR_RULE,
              )
            ) {
              const r = await ctx.exec.mutate('pfctl', ['-f', pfConf], { allowFail: true });
              changed = true;
              if (!ctx.dryRun && !parsePfLoad(`${r.stderr}\n${r.stdout}`).loaded)
                throw new AwgError(
                  privilegeKind(r.stderr),
                  `restoring ${pfConf} failed: ${r.stderr.trim()}`,
                );
            }
          }
          save();
          return changed ? 'changed' : 'unchanged';
        }
      }

      const after = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      const name = anchorPath(after.table);
      const bind = binding(after.ruleset, ctx.state);
      const rdr = hasRdr(after.ruleset);
      const snap = await snapshot(ctx.exec, rec, rdr);
      const rules = parsePfRules(await pf(ctx.exec, pfctlArgs.showAnchorRules(name))).rules;
      const nat = rdr ? parsePfRules(await pf(ctx.exec, pfctlArgs.showAnchorNat(name))).rules : [];
      const a = rec.anchors[name];
      const current =
        !!a &&
        rules.length > 0 &&
        a.ruleset === after.ruleset &&
        same(a.readback, rules) &&
        same(a.natReadback ?? [], nat) &&
        same(a.links, bind);
      const bootCurrent =
        same(observedBoot(ctx.state)?.boot, after.boot) &&
        !liveBootTokens(ctx.state, snap.refs, rec.token).length;
      if (current && snap.hooked && snap.tokenHeld && (!rdr || snap.rdrHooked)) {
        if (!bootCurrent) {
          await syncBoot(after.table, after.boot);
          await releaseBootRefs();
        }
        save();
        return changed ? 'changed' : 'unchanged';
      }

      // what this apply changed before a later step failed, undone so a failed create leaves
      // the main ruleset and PF's enable state as they were (the planner's rollback only
      // deletes objects that were created)
      let hookedNow = false;
      try {
        if (!snap.hooked || (rdr && !snap.rdrHooked)) {
          const conf = (await ctx.exec.read('cat', [pfConf])).stdout;
          const dropped = snap.mainAnchors.filter((n) => !conf.includes(`"${n}"`));
          if (dropped.length)
            ctx.reporter.report({
              type: 'warning',
              message: `reloading the PF main ruleset from ${pfConf} drops anchors other programs inserted at run time: ${dropped.join(', ')}`,
            });
          const r = await ctx.exec.mutate('pfctl', pfctlArgs.loadMain(), {
            input: rdr ? withRdrAnchor(renderMainRuleset(conf)) : renderMainRuleset(conf),
            allowFail: true,
            display: `pfctl -f - < ${pfConf} + ${MAIN_ANCHOR_RULE}${rdr ? ` + ${MAIN_RDR_ANCHOR_RULE}` : ''}`,
          });
          if (!ctx.dryRun) {
            const res = parsePfLoad(`${r.stderr}\n${r.stdout}`);
            if (!res.loaded)
              throw new AwgError(
                privilegeKind(`${r.stderr}\n${r.stdout}`),
                `loading the main ruleset (${pfConf} + our hook) failed: ${[...res.errors.map((e) => `line ${e.line}: ${e.message}`), ...res.messages].join('; ')}`,
              );
            // undone on failure only when this run added the filter hook (a kill switch
            // that was evaluated before stays evaluated)
            hookedNow = !snap.hooked;
          }
        }
        if (!current) {
          const reg = Object.fromEntries(
            Object.entries(readUtunRegistry(ctx.state)).map(([l, o]) => [l, o.ifname]),
          );
          const bound = bindPfLinks(after.ruleset, reg);
          if (bound.unbound.length)
            ctx.reporter.report({
              type: 'warning',
              message: `PF anchor ${name}: no utun yet for ${bound.unbound.join(', ')}; their pass rules stay disabled (traffic blocked) until the engine is up`,
            });
          const r = await ctx.exec.mutate('pfctl', pfctlArgs.loadAnchor(name), {
            input: bound.text,
            allowFail: true,
            display: `pfctl -a ${name} -f - <<< (${bound.text.split('\n').filter((l) => l && !l.startsWith('#')).length} lines)`,
          });
          if (!ctx.dryRun) {
            const res = parsePfLoad(`${r.stderr}\n${r.stdout}`);
            if (!res.loaded) {
              const lines = bound.text.split('\n');
              const detail =
                res.errors
                  .map((e) => `line ${e.line}: ${e.message}: ${lines[e.line - 1] ?? ''}`)
                  .join('; ') ||
                res.messages.join('; ') ||
                r.stderr.trim();
              // a syntax error is our renderer's; a failed ioctl (`DIOCBEGIN: Device busy`) is the
              // host's, and retrying may help
              if (res.errors.length)
                throw new AwgError('bug', `pfctl rejected the rendered anchor ${name}: ${detail}`);
              throw new AwgError(
                privilegeKind(detail),
                `loading the PF anchor ${name} failed: ${detail}`,
              );
            }
            const readback = parsePfRules(
              await pf(ctx.exec, pfctlArgs.showAnchorRules(name)),
            ).rules;
            const natReadback = rdr
              ? parsePfRules(await pf(ctx.exec, pfctlArgs.showAnchorNat(name))).rules
              : undefined;
            rec.anchors[name] = {
              ruleset: after.ruleset,
              readback,
              links: bind,
              ...(natReadback ? { natReadback } : {}),
            };
          }
        }
        if (!snap.tokenHeld) {
          const r = await ctx.exec.mutate('pfctl', pfctlArgs.enableRef(), { allowFail: true });
          if (!ctx.dryRun) {
            const res = parsePfEnable(`${r.stderr}\n${r.stdout}`);
            if (res.status !== 'enabled' || !res.token)
              throw new AwgError(
                privilegeKind(`${r.stderr}\n${r.stdout}`),
                `pfctl -E did not return a reference token: ${res.status === 'error' ? res.message : res.status}`,
              );
            rec.token = res.token;
          }
        }
      } catch (e) {
        if (hookedNow && !Object.keys(rec.anchors).some((n) => n !== name)) {
          if (rec.anchors[name])
            await ctx.exec
              .mutate('pfctl', pfctlArgs.flushAnchor(name), { allowFail: true })
              .catch(() => undefined);
          delete rec.anchors[name];
          await ctx.exec
            .mutate('pfctl', ['-f', pfConf], { allowFail: true })
            .catch(() => undefined);
          save();
        }
        throw e;
      }
      if (!current) {
        // connections PF approved under the old rules would go on past the new ones (a kill
        // switch that leaves an open connection open is not closed): a failed flush fails the run
        const f = await ctx.exec.mutate('pfctl', pfctlArgs.flushStates(), { allowFail: true });
        if (!ctx.dryRun && f.code !== 0) {
          save();
          throw new AwgError(
            privilegeKind(f.stderr || f.stdout),
            `pfctl -F states failed (exit ${f.code}): ${(f.stderr || f.stdout).trim()}; connections opened under the previous rules may still pass`,
          );
        }
      }
      save();
      // ours, the hook and the anchor stand: the boot copy follows, the boot job's reference goes
      if (!ctx.dryRun) {
        await syncBoot(after.table, after.boot);
        await releaseBootRefs();
      }
      save();
      return 'changed';
    },

    async owned(state: StateStore): Promise<PfRecord | undefined> {
      const rec = await load(state, opts.exec);
      return rec.token !== undefined || Object.keys(rec.anchors).length ? rec : undefined;
    },
  };
}
