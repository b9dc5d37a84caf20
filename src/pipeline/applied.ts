/**
 * The applied record: what the last successful apply installed, kept in the state
 * directory for later runs (drift vs config change in `diff`, the claims `down` removes,
 * what `status` compares against, the file the daemon follows).
 */
import { AwgError } from '../errors.js';
import type { AnyResource } from '../model/resources.js';
import type { Claims } from '../resources/driver.js';
import type { StateStore } from '../util/state.js';

export interface AppliedRecord {
  configFile: string;
  appliedAt: string;
  claims: Claims;
  resources: AnyResource[];
  outcome: string;
}

const KEY = 'applied';

/** The one typed access to the record. */
export class AppliedStore {
  constructor(readonly state: StateStore) {}

  /** the record, or undefined when nothing is applied; a record of another shape is an error, not ignored */
  load(): AppliedRecord | undefined {
    const r = this.state.get<unknown>(KEY);
    if (r === undefined) return undefined;
    const o = r as Partial<AppliedRecord>;
    if (typeof o !== 'object' || o === null || typeof o.configFile !== 'string' || !Array.isArray(o.resources) || typeof o.claims !== 'object' || o.claims === null)
      throw new AwgError('driver', `${this.state.dir}/${KEY}.json is not a record of awg apply`, { hint: 'move it away; `awg down -f <config>` then removes what that config claims' });
    return o as AppliedRecord;
  }

  save(r: AppliedRecord): void {
    this.state.set(KEY, r);
  }

  clear(): void {
    this.state.delete(KEY);
  }
}
