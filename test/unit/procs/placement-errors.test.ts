/**
 * Placement errors by kind: the counts status shows (their sum is `errors`) and the reports
 * the placer child sends for the kinds that counted.
 */
import { describe, expect, it } from 'vitest';
import {
  errorKindsText,
  placementErrorCounts,
  placementErrorReports,
  sumErrors,
} from '../../../src/procs/placement-errors.js';

describe('placement errors by kind', () => {
  it('counts the placer’s and the gate’s errors apart; the sum is the old total', () => {
    const c = placementErrorCounts({ missingCgroup: 1, errors: 2 }, { late: 3, errors: 4 });
    expect(c).toEqual({ missingCgroup: 1, writeFailed: 2, gateLate: 3, gateFailed: 4 });
    expect(sumErrors(c)).toBe(10);
    expect(placementErrorCounts({ missingCgroup: 0, errors: 5 })).toEqual({
      missingCgroup: 0,
      writeFailed: 5,
      gateLate: 0,
      gateFailed: 0,
    });
    expect(errorKindsText(c)).toBe('missing cgroup 1, write failed 2, gate late 3, gate failed 4');
    expect(errorKindsText({ ...c, missingCgroup: 0, gateFailed: 0 })).toBe(
      'write failed 2, gate late 3',
    );
  });

  it('reports only the kinds that grew, each naming its kind; a refused write is `permission`', () => {
    const zero = placementErrorCounts({ missingCgroup: 0, errors: 0 });
    const now = { missingCgroup: 0, writeFailed: 1, gateLate: 2, gateFailed: 1 };
    const r = placementErrorReports(zero, now, {
      writeFailed: { cgroup: 'awg/work', errno: 'EBUSY' },
    });
    expect(r.map((x) => [x.kind, x.message.split(':')[0]])).toEqual([
      ['driver', 'placement error writeFailed (1 more, 1 in all)'],
      ['driver', 'placement error gateLate (2 more, 2 in all)'],
      ['driver', 'placement error gateFailed (1 more, 1 in all)'],
    ]);
    expect(r[0]!.message).toContain('into awg/work failed: EBUSY');
    expect(placementErrorReports(now, now, {})).toEqual([]);
    expect(
      placementErrorReports(
        now,
        { ...now, writeFailed: 2 },
        {
          writeFailed: { cgroup: 'awg/x', errno: 'EPERM' },
        },
      )[0]!.kind,
    ).toBe('permission');
  });
});
