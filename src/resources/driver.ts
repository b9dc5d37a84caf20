/**
 * The one shape every resource driver has (wireguard-go `tun.Device`, controller-runtime
 * `CreateOrUpdate`): observe the objects of one kind that we own, and apply one change.
 *
 * Contract, method by method:
 * - `observe(scope)` reads the system and returns every object of this kind that carries
 *   our marker, normalised to the same spec shape the model produces, plus foreign objects
 *   that collide with desired identities (`conflict`) or compete for the same traffic
 *   (`competitor`). It never mutates anything. It throws AwgError('driver'|'permission'|
 *   'unsupported') when the system cannot be read.
 * - `apply(change, ctx)` makes the system match `change.after` (or removes `change.before`
 *   for deletes). It is idempotent: applying a change whose effect is already in place
 *   returns 'unchanged' and performs no mutation. It only ever touches objects carrying
 *   our marker; it never deletes by pattern. On failure it throws an AwgError and leaves
 *   no partial object behind where the OS allows that (e.g. nft loads are atomic).
 *   Every mutation goes through `ctx.exec` (or is reported through `ctx.reporter`) so it
 *   is logged, counted and suppressed under dry-run. A change committed whole whose object
 *   then reads back differently throws `CommittedReadBackError`.
 */
import { AwgError } from '../errors.js';
import type { Change } from '../model/change.js';
import type { DesiredState, ForeignObject, Resource, ResourceKind } from '../model/resources.js';
import type { Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';

export interface ObserveScope {
  /** lets a driver limit observation to identities it might own (e.g. our tables) */
  desired: DesiredState;
  /** routing band etc. from the config; observation of owned objects must not depend on desired contents */
  claims: Claims;
  state: StateStore;
}

/** Identifiers awg claims on this host; ownership markers are derived from these. */
export interface Claims {
  routeProtocol: number;
  tableBase: number;
  /** number of tables / priorities in the band */
  bandSize: number;
  rulePriority: number;
  fwmarkMask: number;
  nftTable: string;
  linkPrefix: string;
  cgroupRoot: string;
}

export interface ApplyContext {
  exec: Exec;
  reporter: Reporter;
  state: StateStore;
  dryRun: boolean;
  claims: Claims;
  /** resolved secret values by config path (`tunnels.<name>.privateKey`, …); only engines read them */
  secrets?: ReadonlyMap<string, string> | undefined;
}

export type ApplyResult = 'changed' | 'unchanged';

export interface ObserveResult<K extends ResourceKind> {
  resources: Resource<K>[];
  foreign: ForeignObject[];
  facts?: Record<string, unknown>;
}

export interface Driver<K extends ResourceKind> {
  readonly kind: K;
  observe(scope: ObserveScope): Promise<ObserveResult<K>>;
  apply(change: Change<K>, ctx: ApplyContext): Promise<ApplyResult>;
  /**
   * Drivers whose ownership lives only in a state record (macOS: PF's reference token, the
   * DNS originals; the system has no marker on them): that record as the driver reads it now,
   * or undefined when it holds nothing. After an apply converged the pipeline keeps it in the
   * applied record (`owned.<kind>`, util/state.ts `appliedCopy`), the second source the driver
   * falls back to when its record is unusable. It may read the system; it never mutates it.
   */
  owned?(state: StateStore): Promise<unknown>;
}

export type DriverSet = { [K in ResourceKind]: Driver<K> };

/**
 * What `apply` throws when its change was committed whole (one atomic transaction the OS
 * accepted: an `nft -f` load) and the object is there, but it reads back differently from the
 * spec (another program changed it in between, or the OS prints it in another form). What is
 * in place is what was loaded: a rollback that keeps the kill switch counts such a firewall
 * as holding (reconciler/run.ts) rather than reporting traffic open.
 */
export class CommittedReadBackError extends AwgError {
  /** the change's resource id */
  readonly id: string;
  constructor(id: string, message: string) {
    super('verification', message);
    this.id = id;
  }
}
