/**
 * What the macOS firewall driver (darwin.ts) reads before it acts: its own record of the
 * anchors it loaded and the reference token it holds (kept in the state store as
 * `darwin-pf`, with the applied record's copy as the fallback), PF's main ruleset and
 * references, the utuns the tunnel macros are bound to, and the kill switch's boot copy.
 * Nothing here mutates PF.
 */
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import {
  APPLIED_STATE_KEY,
  appliedCopy,
  checkedRecord,
  stateFile,
  type StateStore,
} from '../../util/state.js';
import { isObject, isStrings } from '../../util/shape.js';
import { parsePfReferences, parsePfRules } from '../../platform/darwin/pfctl.js';
import {
  ANCHOR_ROOT,
  MAIN_ANCHOR_RULE,
  MAIN_NAT_ANCHOR_RULE,
  MAIN_RDR_ANCHOR_RULE,
  linkMacro,
  pfctlArgs,
} from '../../platform/darwin/pf-render.js';
import { MAIN_DUMMYNET_ANCHOR_RULE } from '../../platform/darwin/pf-shaping.js';
import {
  BOOT_ANCHOR_FILE,
  BOOT_CONF_FILE,
  BOOT_LOG_FILE,
  bootTokens,
  isOurBootConf,
  parseBootAnchor,
} from '../../platform/darwin/pf-boot.js';
import { readUtunRegistry } from '../../platform/darwin/utun.js';
import { pfOpenError, privilegeKind } from '../../platform/darwin/privilege.js';

export const PF_STATE_KEY = 'darwin-pf';

export interface AnchorRecord {
  ruleset: string;
  readback: string[];
  /** macro → utun bound at load */
  links: Record<string, string>;
  /** `-a … -sn` after the load (anchors with translation rules only) */
  natReadback?: string[];
  /** `-a … -s dummynet` after the load (anchors with dummynet rules only: limits) */
  dnReadback?: string[];
}
export interface PfRecord {
  token?: string;
  anchors: Record<string, AnchorRecord>;
}

/** A boot kill switch file (stateFile), or `unreadable (…)` */
export const bootFiles = {
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
export function observedBoot(state: StateStore): { table?: string; boot: string } | undefined {
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
export function liveBootTokens(
  state: StateStore,
  refs: readonly string[],
  own: string | undefined,
): string[] {
  return bootTokens(bootFiles.read(state, BOOT_LOG_FILE) ?? '').filter(
    (t) => t !== own && refs.includes(t),
  );
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
      (a.natReadback === undefined || isStrings(a.natReadback)) &&
      (a.dnReadback === undefined || isStrings(a.dnReadback)),
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
export async function load(s: StateStore, exec: Pick<Exec, 'read'>): Promise<PfRecord> {
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

export async function pf(exec: Pick<Exec, 'read'>, args: string[]): Promise<string> {
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
export function binding(ruleset: string, state: StateStore): Record<string, string> {
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
export function rebound(loaded: Record<string, string>, now: Record<string, string>): boolean {
  return Object.entries(now).some(([m, ifn]) => ifn !== '' && loaded[m] !== ifn);
}

export interface Snapshot {
  hooked: boolean;
  /** `nat-anchor` and `rdr-anchor "com.awg/*"` among the main translation rules (read only when asked) */
  rdrHooked: boolean;
  /** `dummynet-anchor "com.awg/*"` among the main dummynet rules (read only when asked) */
  dnHooked: boolean;
  tokenHeld: boolean;
  /** every `-E` token PF holds */
  refs: string[];
  mainAnchors: string[];
  mainOther: string[];
}

export async function snapshot(
  exec: Pick<Exec, 'read'>,
  rec: PfRecord,
  rdr = false,
  dn = false,
): Promise<Snapshot> {
  const main = parsePfRules(await pf(exec, pfctlArgs.showMainRules()));
  const refs = parsePfReferences(await pf(exec, pfctlArgs.showReferences()));
  const nat = rdr ? parsePfRules(await pf(exec, pfctlArgs.showMainNat())).rules : [];
  const dummynet = dn ? parsePfRules(await pf(exec, pfctlArgs.showMainDummynet())).rules : [];
  return {
    hooked: main.rules.includes(MAIN_ANCHOR_RULE),
    rdrHooked: nat.includes(MAIN_NAT_ANCHOR_RULE) && nat.includes(MAIN_RDR_ANCHOR_RULE),
    dnHooked: dummynet.includes(MAIN_DUMMYNET_ANCHOR_RULE),
    tokenHeld: rec.token !== undefined && refs.some((r) => r.token === rec.token),
    refs: refs.map((r) => r.token),
    mainAnchors: main.anchors.filter((a) => a.kind === 'anchor').map((a) => a.name),
    mainOther: main.rules.filter((r) => !/^(?:\w+-)?anchor "/.test(r)),
  };
}
