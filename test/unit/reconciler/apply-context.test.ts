/** applyContextOf: the drivers' apply context from a reconcile environment, dry when its Exec is. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { applyContextOf, type ReconcileEnv } from '../../../src/reconciler/observe.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';

describe('applyContextOf', () => {
  const env = (dryRun: boolean): ReconcileEnv => ({
    drivers: {},
    claims: DEFAULT_CLAIMS,
    state: new MemoryStateStore(),
    exec: new RecordingExec({}, dryRun),
    reporter: silentReporter,
    secrets: new Map([['k', 'v']]),
  });

  it('carries the environment over; a dry run is the Exec being dry', () => {
    for (const dry of [false, true]) {
      const e = env(dry);
      expect(applyContextOf(e)).toEqual({
        exec: e.exec,
        reporter: e.reporter,
        state: e.state,
        dryRun: dry,
        claims: e.claims,
        secrets: e.secrets,
      });
    }
  });
});
