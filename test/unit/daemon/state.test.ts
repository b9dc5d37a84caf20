/** What `state` (and so `awg status`'s exit code) says while a run is under way. */
import { describe, expect, it } from 'vitest';
import { daemonState } from '../../../src/daemon/status.js';

const st = (running: Parameters<typeof daemonState>[0]['running'], lastOutcome?: string) =>
  daemonState({ running, configured: true, lastOutcome });

describe('daemonState', () => {
  it('a re-check (drift timer, network, engine) keeps the last verdict while it runs', () => {
    for (const r of ['drift-timer', 'network', 'engine'] as const) {
      expect(st(r, 'unchanged')).toBe('converged');
      expect(st(r, 'converged')).toBe('converged');
      expect(st(r, 'failed-closed')).toBe('failed-closed');
      expect(st(r, 'rolled-back')).toBe('drifted');
      // nothing known yet: the first run is under way
      expect(st(r)).toBe('reconciling');
    }
  });

  it('a run for a new desired state, or a retry, is reconciling', () => {
    for (const r of ['start', 'config', 'api', 'confirm-timeout', 'retry'] as const)
      expect(st(r, 'unchanged')).toBe('reconciling');
  });

  it('idle: the last outcome; not configured: down', () => {
    expect(st(undefined, 'unchanged')).toBe('converged');
    expect(st(undefined, 'failed')).toBe('failed');
    expect(st(undefined)).toBe('reconciling');
    expect(daemonState({ running: undefined, configured: false, lastOutcome: undefined })).toBe(
      'down',
    );
  });
});
