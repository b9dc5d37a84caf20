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
 * - An anchor with translation rules (the flow router's `nat` and `rdr`,
 *   platform/darwin/pf-flow.ts) is evaluated only if the main ruleset also has
 *   `nat-anchor "com.awg/*"` and `rdr-anchor "com.awg/*"` among its translation rules (read
 *   with `-sn`); the same reload adds them (pf-flow.ts withTranslationAnchors),
 *   and those rules are read back with `-a … -sn`. Teardown flushes an anchor's translation
 *   rules and tables too (`-F rules` leaves them).
 * - An anchor with dummynet rules (limits, platform/darwin/pf-shaping.ts) is evaluated only if
 *   the main ruleset has `dummynet-anchor "com.awg/*"` (read with `pfctl -s dummynet`); the
 *   same reload adds it, those rules are read back with `-a … -s dummynet`, and teardown
 *   flushes them (`-a … -F dummynet`; `-F rules` leaves them).
 * After every rule change the state table is flushed (`pfctl -F states`): PF otherwise keeps
 * passing connections it approved under the old rules.
 *
 * Kill switch on (the spec's `boot`): the kill switch from boot is kept in the state directory
 * (platform/darwin/pf-boot.ts: a main ruleset and the anchor with every tunnel unbound) for
 * the LaunchDaemon com.awg.killswitch. Part of the observed spec like Linux's boot copy: a
 * missing or edited copy is drift; it goes with the kill switch and on `down`. The boot job's
 * own `-E` reference (its token in its log) is released once ours, the hook and the anchor are
 * in place, or on `down`; while PF holds it, observe appends a note (drift) so a run does that.
 *
 * The driver's record and what it reads of PF before acting are darwin-record.ts's; each apply
 * runs as one PfSession below.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { FirewallSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import { specEqual } from '../../util/canonical.js';
import type { Exec } from '../../util/exec.js';
import type { StateStore } from '../../util/state.js';
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
  MAIN_NAT_ANCHOR_RULE,
  MAIN_RDR_ANCHOR_RULE,
  bindPfLinks,
  hasRdr,
  pfctlArgs,
  renderMainRuleset,
} from '../../platform/darwin/pf-render.js';
import { withTranslationAnchors } from '../../platform/darwin/pf-flow.js';
import {
  DUMMYNET_ANCHOR_RULE,
  hasDummynet,
  withDummynetAnchor,
} from '../../platform/darwin/pf-shaping.js';
import {
  BOOT_ANCHOR_FILE,
  BOOT_CONF_FILE,
  BOOT_LOG_FILE,
  renderBootAnchor,
  renderBootConf,
} from '../../platform/darwin/pf-boot.js';
import { readUtunRegistry } from '../../platform/darwin/utun.js';
import { privilegeKind } from '../../platform/darwin/privilege.js';
import {
  binding,
  bootFiles,
  liveBootTokens,
  load,
  observedBoot,
  pf,
  PF_STATE_KEY,
  rebound,
  snapshot,
  type PfRecord,
  type Snapshot,
} from './darwin-record.js';

export { PF_STATE_KEY } from './darwin-record.js';

export const NOTE_NO_TOKEN = "# awg: pf is not enabled under awg's reference token";
export const NOTE_NO_HOOK = `# awg: the main ruleset does not evaluate ${ANCHOR_ROOT}/*`;
export const NOTE_NO_RDR_HOOK = `# awg: the main ruleset does not evaluate the translation rules of ${ANCHOR_ROOT}/*`;
export const NOTE_NO_DN_HOOK = `# awg: the main ruleset does not evaluate the dummynet rules of ${ANCHOR_ROOT}/*`;
export const NOTE_REBOUND = '# awg: tunnel links moved to other utuns since the anchor was loaded';
export const NOTE_BOOT_REF = "# awg: pf still holds the boot kill switch's reference";

export interface DarwinFirewallOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
  pfConf?: string;
}

const tableOf = (anchor: string) => anchor.slice(ANCHOR_ROOT.length + 1);

/**
 * One apply against PF: the record it loaded (saved back as it goes, never under dry-run),
 * whether anything changed, and the steps of a delete (`remove`) and of a load (`put`).
 */
class PfSession {
  private changed = false;

  constructor(
    private readonly ctx: ApplyContext,
    private readonly rec: PfRecord,
    private readonly pfConf: string,
  ) {}

  private save(): void {
    if (!this.ctx.dryRun) this.ctx.state.set(PF_STATE_KEY, this.rec);
  }

  private async rules(args: string[]): Promise<string[]> {
    return parsePfRules(await pf(this.ctx.exec, args)).rules;
  }

  private pfctl(args: string[], o: { input?: string; display?: string } = {}) {
    return this.ctx.exec.mutate('pfctl', args, { ...o, allowFail: true });
  }

  /** an anchor's rules go, and with them its record; the router's translation rules too */
  async flushAnchor(name: string): Promise<void> {
    if ((await this.rules(pfctlArgs.showAnchorRules(name))).length) {
      await this.pfctl(pfctlArgs.flushAnchor(name));
      this.changed = true;
    }
    // the router's nat and rdr rules and its skip table stay after `-F rules`
    if (this.rec.anchors[name] && hasRdr(this.rec.anchors[name].ruleset)) {
      await this.pfctl(pfctlArgs.flushAnchorNat(name));
      await this.pfctl(pfctlArgs.flushAnchorTables(name));
      this.changed = true;
    }
    // the dummynet rules (limits) stay after `-F rules` too
    if (this.rec.anchors[name] && hasDummynet(this.rec.anchors[name].ruleset)) {
      await this.pfctl(pfctlArgs.flushAnchorDummynet(name));
      this.changed = true;
    }
    delete this.rec.anchors[name];
  }

  /**
   * The anchor of `table` is flushed: its boot copy goes, and after the last anchor our
   * reference token and the hook (pf.conf reloaded as it is).
   */
  async remove(table: string): Promise<ApplyResult> {
    await this.syncBoot(table, undefined);
    if (!Object.keys(this.rec.anchors).length) {
      await this.releaseBootRefs();
      if (this.rec.token) await this.releaseToken(this.rec.token);
      if ((await this.rules(pfctlArgs.showMainRules())).includes(MAIN_ANCHOR_RULE))
        await this.unhook();
    }
    this.save();
    return this.changed ? 'changed' : 'unchanged';
  }

  private async releaseToken(token: string): Promise<void> {
    const r = await this.pfctl(pfctlArgs.releaseRef(token));
    this.changed = true;
    const res = this.ctx.dryRun ? undefined : parsePfRelease(`${r.stderr}\n${r.stdout}`);
    if (res?.status === 'error')
      throw new AwgError(privilegeKind(res.message), `pfctl -X: ${res.message}`);
    delete this.rec.token;
  }

  /** the main ruleset back to pf.conf as it is, without our hook */
  private async unhook(): Promise<void> {
    const r = await this.pfctl(['-f', this.pfConf]);
    this.changed = true;
    if (!this.ctx.dryRun && !parsePfLoad(`${r.stderr}\n${r.stdout}`).loaded)
      throw new AwgError(
        privilegeKind(r.stderr),
        `restoring ${this.pfConf} failed: ${r.stderr.trim()}`,
      );
  }

  /**
   * The anchor of `after` loaded and bound to the utuns now, the main ruleset hooked, PF
   * enabled under our token, then the boot copy; whatever already holds is left alone.
   */
  async put(after: FirewallSpec): Promise<ApplyResult> {
    const { ctx, rec } = this;
    const name = anchorPath(after.table);
    const bind = binding(after.ruleset, ctx.state);
    const rdr = hasRdr(after.ruleset);
    const dn = hasDummynet(after.ruleset);
    const snap = await snapshot(ctx.exec, rec, rdr, dn);
    const rules = await this.rules(pfctlArgs.showAnchorRules(name));
    const nat = rdr ? await this.rules(pfctlArgs.showAnchorNat(name)) : [];
    const dummynet = dn ? await this.rules(pfctlArgs.showAnchorDummynet(name)) : [];
    const a = rec.anchors[name];
    const current =
      !!a &&
      rules.length > 0 &&
      a.ruleset === after.ruleset &&
      specEqual(a.readback, rules) &&
      specEqual(a.natReadback ?? [], nat) &&
      specEqual(a.dnReadback ?? [], dummynet) &&
      specEqual(a.links, bind);
    const hooksHeld = snap.hooked && (!rdr || snap.rdrHooked) && (!dn || snap.dnHooked);
    const bootCurrent =
      specEqual(observedBoot(ctx.state)?.boot, after.boot) &&
      !liveBootTokens(ctx.state, snap.refs, rec.token).length;
    if (current && hooksHeld && snap.tokenHeld) {
      if (!bootCurrent) {
        await this.syncBoot(after.table, after.boot);
        await this.releaseBootRefs();
      }
      this.save();
      return this.changed ? 'changed' : 'unchanged';
    }

    // what this apply changed before a later step failed, undone so a failed create leaves
    // the main ruleset and PF's enable state as they were (the planner's rollback only
    // deletes objects that were created)
    let hookedNow = false;
    try {
      if (!hooksHeld) hookedNow = await this.hook(snap, rdr, dn);
      if (!current) await this.loadAnchor(name, after.ruleset, bind, rdr, dn);
      if (!snap.tokenHeld) await this.enable();
    } catch (e) {
      if (hookedNow && !Object.keys(rec.anchors).some((n) => n !== name)) await this.undo(name);
      throw e;
    }
    if (!current) await this.flushStates();
    this.save();
    // ours, the hook and the anchor stand: the boot copy follows, the boot job's reference goes
    if (!ctx.dryRun) {
      await this.syncBoot(after.table, after.boot);
      await this.releaseBootRefs();
    }
    this.save();
    return 'changed';
  }

  /**
   * The main ruleset reloaded as pf.conf plus our hook (and the translation hooks for `nat` and `rdr`).
   * True when this run added the filter hook: only then is it undone on failure (a kill switch
   * that was evaluated before stays evaluated).
   */
  private async hook(snap: Snapshot, rdr: boolean, dn: boolean): Promise<boolean> {
    const { ctx, pfConf } = this;
    const conf = (await ctx.exec.read('cat', [pfConf])).stdout;
    const dropped = snap.mainAnchors.filter((n) => !conf.includes(`"${n}"`));
    if (dropped.length)
      ctx.reporter.report({
        type: 'warning',
        message: `reloading the PF main ruleset from ${pfConf} drops anchors other programs inserted at run time: ${dropped.join(', ')}`,
      });
    let main = renderMainRuleset(conf);
    if (rdr) main = withTranslationAnchors(main);
    if (dn) main = withDummynetAnchor(main);
    const r = await this.pfctl(pfctlArgs.loadMain(), {
      input: main,
      display: `pfctl -f - < ${pfConf} + ${MAIN_ANCHOR_RULE}${rdr ? ` + ${MAIN_NAT_ANCHOR_RULE} + ${MAIN_RDR_ANCHOR_RULE}` : ''}${dn ? ` + ${DUMMYNET_ANCHOR_RULE}` : ''}`,
    });
    if (ctx.dryRun) return false;
    const res = parsePfLoad(`${r.stderr}\n${r.stdout}`);
    if (!res.loaded)
      throw new AwgError(
        privilegeKind(`${r.stderr}\n${r.stdout}`),
        `loading the main ruleset (${pfConf} + our hook) failed: ${[...res.errors.map((e) => `line ${e.line}: ${e.message}`), ...res.messages].join('; ')}`,
      );
    return !snap.hooked;
  }

  /** the anchor's ruleset with the tunnel macros bound to the utuns now, then its read-back recorded */
  private async loadAnchor(
    name: string,
    ruleset: string,
    bind: Record<string, string>,
    rdr: boolean,
    dn: boolean,
  ): Promise<void> {
    const { ctx } = this;
    const reg = Object.fromEntries(
      Object.entries(readUtunRegistry(ctx.state)).map(([l, o]) => [l, o.ifname]),
    );
    const bound = bindPfLinks(ruleset, reg);
    if (bound.unbound.length)
      ctx.reporter.report({
        type: 'warning',
        message: `PF anchor ${name}: no utun yet for ${bound.unbound.join(', ')}; their pass rules stay disabled (traffic blocked) until the engine is up`,
      });
    const r = await this.pfctl(pfctlArgs.loadAnchor(name), {
      input: bound.text,
      display: `pfctl -a ${name} -f - <<< (${bound.text.split('\n').filter((l) => l && !l.startsWith('#')).length} lines)`,
    });
    if (ctx.dryRun) return;
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
      throw new AwgError(privilegeKind(detail), `loading the PF anchor ${name} failed: ${detail}`);
    }
    const readback = await this.rules(pfctlArgs.showAnchorRules(name));
    const natReadback = rdr ? await this.rules(pfctlArgs.showAnchorNat(name)) : undefined;
    const dnReadback = dn ? await this.rules(pfctlArgs.showAnchorDummynet(name)) : undefined;
    this.rec.anchors[name] = {
      ruleset,
      readback,
      links: bind,
      ...(natReadback ? { natReadback } : {}),
      ...(dnReadback ? { dnReadback } : {}),
    };
  }

  /** PF enabled under a reference token of ours (`pfctl -E`) */
  private async enable(): Promise<void> {
    const r = await this.pfctl(pfctlArgs.enableRef());
    if (this.ctx.dryRun) return;
    const res = parsePfEnable(`${r.stderr}\n${r.stdout}`);
    if (res.status !== 'enabled' || !res.token)
      throw new AwgError(
        privilegeKind(`${r.stderr}\n${r.stdout}`),
        `pfctl -E did not return a reference token: ${res.status === 'error' ? res.message : res.status}`,
      );
    this.rec.token = res.token;
  }

  /** a failed first load: the anchor flushed and pf.conf reloaded without our hook */
  private async undo(name: string): Promise<void> {
    const a = this.rec.anchors[name];
    if (a) {
      const flush = (args: string[]) => this.pfctl(args).catch(() => undefined);
      await flush(pfctlArgs.flushAnchor(name));
      // what `-F rules` leaves: the router's translation rules and table, the dummynet rules
      if (hasRdr(a.ruleset)) {
        await flush(pfctlArgs.flushAnchorNat(name));
        await flush(pfctlArgs.flushAnchorTables(name));
      }
      if (hasDummynet(a.ruleset)) await flush(pfctlArgs.flushAnchorDummynet(name));
    }
    delete this.rec.anchors[name];
    await this.pfctl(['-f', this.pfConf]).catch(() => undefined);
    this.save();
  }

  /**
   * PF's state table flushed: connections PF approved under the old rules would go on past
   * the new ones (a kill switch that leaves an open connection open is not closed), so a
   * failed flush fails the run.
   */
  private async flushStates(): Promise<void> {
    const f = await this.pfctl(pfctlArgs.flushStates());
    if (this.ctx.dryRun || f.code === 0) return;
    this.save();
    throw new AwgError(
      privilegeKind(f.stderr || f.stdout),
      `pfctl -F states failed (exit ${f.code}): ${(f.stderr || f.stdout).trim()}; connections opened under the previous rules may still pass`,
    );
  }

  /**
   * The boot copy follows the spec (written after the anchor it copies, removed without a
   * kill switch). A failure never undoes the anchor that runs: a warning, and drift the next
   * run repairs.
   */
  private async syncBoot(table: string, boot: string | undefined): Promise<void> {
    const { ctx, pfConf } = this;
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
        this.changed = true;
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
        this.changed = true;
      }
      if (
        bootFiles.read(ctx.state, BOOT_CONF_FILE) !== conf &&
        ctx.exec.record(
          `write ${bootFiles.path(ctx.state, BOOT_CONF_FILE)} (${pfConf} + our hook + the boot anchor, mode 0600)`,
        )
      ) {
        bootFiles.write(ctx.state, BOOT_CONF_FILE, conf);
        this.changed = true;
      }
    } catch (e) {
      ctx.reporter.report({
        type: 'warning',
        message: `the kill switch's boot copy in ${ctx.state.dir} could not be ${boot === undefined ? 'removed' : 'written'}: ${(e as Error).message}`,
      });
    }
  }

  /** the boot job's reference, once ours stands in for it (or on down); then its log goes */
  private async releaseBootRefs(): Promise<void> {
    const { ctx } = this;
    const refs = parsePfReferences(await pf(ctx.exec, pfctlArgs.showReferences())).map(
      (r) => r.token,
    );
    for (const t of liveBootTokens(ctx.state, refs, this.rec.token)) {
      await this.pfctl(pfctlArgs.releaseRef(t));
      this.changed = true;
    }
    if (
      bootFiles.read(ctx.state, BOOT_LOG_FILE) !== undefined &&
      ctx.exec.record(`rm ${bootFiles.path(ctx.state, BOOT_LOG_FILE)}`)
    )
      bootFiles.remove(ctx.state, BOOT_LOG_FILE);
  }
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
      const wantsDn =
        Object.values(rec.anchors).some((a) => hasDummynet(a.ruleset)) ||
        scope.desired.resources.some(
          (r) => r.kind === 'firewall' && hasDummynet((r.spec as FirewallSpec).ruleset),
        );
      const snap = await snapshot(opts.exec, rec, wantsRdr, wantsDn);
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
        const natSame = !rdr || specEqual(a.natReadback ?? [], nat);
        // so do the dummynet rules (limits)
        const dn = a !== undefined && hasDummynet(a.ruleset);
        const dummynet = dn
          ? parsePfRules(await pf(opts.exec, pfctlArgs.showAnchorDummynet(name))).rules
          : [];
        const dnSame = !dn || specEqual(a.dnReadback ?? [], dummynet);
        // an empty anchor is ours only while we recorded it (someone flushed it, or a load
        // failed after the hook and the token were taken): reported, so repair, rollback and
        // `down` still release the token and the hook
        const table = tableOf(name);
        const bootHere =
          boot && (boot.table === undefined || boot.table === table) ? boot.boot : undefined;
        if (!rules.length && !a && bootHere === undefined) continue;
        let text: string;
        if (a && natSame && dnSame && specEqual(a.readback, rules))
          text = !rebound(a.links, binding(a.ruleset, scope.state))
            ? a.ruleset
            : `${a.ruleset}${NOTE_REBOUND}\n`;
        else text = `${[...nat, ...dummynet, ...rules].join('\n')}\n`;
        if (!snap.tokenHeld) text += `${NOTE_NO_TOKEN}\n`;
        if (!snap.hooked) text += `${NOTE_NO_HOOK}\n`;
        if (rdr && !snap.rdrHooked) text += `${NOTE_NO_RDR_HOOK}\n`;
        if (dn && !snap.dnHooked) text += `${NOTE_NO_DN_HOOK}\n`;
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
      const session = new PfSession(ctx, await load(ctx.state, ctx.exec), pfConf);
      const { before, after } = change;
      if (
        change.action === 'delete' ||
        (change.action === 'replace' && before && after && before.table !== after.table)
      ) {
        if (!before) throw new AwgError('bug', `delete ${change.id} without before`);
        await session.flushAnchor(anchorPath(before.table));
        if (change.action === 'delete') return session.remove(before.table);
      }
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      return session.put(after);
    },

    async owned(state: StateStore): Promise<PfRecord | undefined> {
      const rec = await load(state, opts.exec);
      return rec.token !== undefined || Object.keys(rec.anchors).length ? rec : undefined;
    },
  };
}
