/**
 * The applied record: what the last successful apply installed, kept in the state
 * directory for later runs (drift vs config change in `diff`, the claims `down` removes,
 * what `status` compares against, the file the daemon follows).
 */
import type { AnyResource, ResourceKind } from '../model/resources.js';
import type { Claims } from '../resources/driver.js';
import { APPLIED_STATE_KEY, type StateStore } from '../util/state.js';
import type { HostSelection } from '../config/overlay.js';

export interface AppliedRecord {
  configFile: string;
  appliedAt: string;
  claims: Claims;
  resources: AnyResource[];
  outcome: string;
  /** the host the config's overlays were selected for (configs with overlays only) */
  selection?: HostSelection;
  /**
   * Set when a stopping daemon removed what it hosted but kept this record (the kill switch
   * stays closed while it is down): the ids it removed, so the next start restores them as
   * such instead of reporting them as drift (deleted outside awg). The next save drops it.
   */
  stopped?: { at: string; removed: string[] };
  /**
   * The ownership records of drivers that keep them only in the state store (Driver.owned, by
   * kind; macOS PF and DNS), as they stood when this apply converged: their fallback when
   * their own record is unusable. Absent when no driver keeps one (Linux).
   */
  owned?: Partial<Record<ResourceKind, unknown>>;
}

const KEY = APPLIED_STATE_KEY;
const CLAIMS_KEY = 'claims';

/** claims feed `ip`/`nft` arguments and ownership checks: every field of the right type */
function validClaims(c: unknown): c is Claims {
  if (typeof c !== 'object' || c === null) return false;
  const o = c as Record<string, unknown>;
  const int = (k: string) => Number.isSafeInteger(o[k]) && (o[k] as number) >= 0;
  const name = (k: string) =>
    typeof o[k] === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(o[k] as string);
  return (
    int('routeProtocol') &&
    int('tableBase') &&
    int('bandSize') &&
    int('rulePriority') &&
    int('fwmarkMask') &&
    name('nftTable') &&
    name('linkPrefix') &&
    name('cgroupRoot')
  );
}

/** The one typed access to the record. */
export class AppliedStore {
  constructor(readonly state: StateStore) {}

  /**
   * The record, or undefined when nothing is applied. A record that is not one (torn, not
   * JSON, another shape) is never a crash of `down` or of the daemon: the state store moves it
   * aside and reports it (util/state.ts), and this reads as "nothing recorded"; `down` still
   * finds every object by its marker (with the default claims, or those of `down -f`).
   */
  load(): AppliedRecord | undefined {
    const r = this.state.get<unknown>(KEY);
    if (r === undefined) return undefined;
    const o = r as Partial<AppliedRecord>;
    if (
      typeof o !== 'object' ||
      o === null ||
      typeof o.configFile !== 'string' ||
      !Array.isArray(o.resources) ||
      !validClaims(o.claims)
    ) {
      this.state.setAside(KEY, 'not a record of awg apply');
      return undefined;
    }
    return o as AppliedRecord;
  }

  /**
   * The claims of the last apply: from its record, else from their own small record (kept
   * beside it, so `down` still knows a non-default routing band when the big record is lost).
   */
  claims(): Claims | undefined {
    const r = this.load();
    if (r) return r.claims;
    const c = this.state.get<unknown>(CLAIMS_KEY);
    if (c === undefined) return undefined;
    if (validClaims(c)) return c;
    this.state.setAside(CLAIMS_KEY, 'not the claims of awg apply');
    return undefined;
  }

  save(r: AppliedRecord): void {
    this.state.set(CLAIMS_KEY, r.claims);
    this.state.set(KEY, r);
  }

  /** Note on the record that a stopping daemon removed these ids on purpose (see `stopped`). */
  markStopped(removed: readonly string[], at = new Date().toISOString()): void {
    const r = this.load();
    if (r) this.state.set(KEY, { ...r, stopped: { at, removed: [...removed] } });
  }

  /** the ids the last daemon stop removed on purpose (none when it was not stopped since the last save) */
  stoppedRemoved(): ReadonlySet<string> {
    const s = this.load()?.stopped;
    return new Set(
      s && Array.isArray(s.removed)
        ? s.removed.filter((x): x is string => typeof x === 'string')
        : [],
    );
  }

  clear(): void {
    this.state.delete(KEY);
    this.state.delete(CLAIMS_KEY);
  }
}
