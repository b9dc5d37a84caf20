/**
 * nf_tables notification types (nftnl.ts) against the uapi numbering of enum
 * nf_tables_msg_types: NEWOBJ is 18 and DELOBJ 20 (19 and 21 are GETOBJ and GETOBJ_RESET,
 * requests the kernel never multicasts); an object's change was missed while they were 19/21.
 * And the own listeners' leave/rejoin around a load of our own (withoutOwnNftNotifications).
 */
import { describe, expect, it } from 'vitest';
import {
  ownNftListener,
  parseNftEvent,
  withoutOwnNftNotifications,
} from '../../../src/native/nftnl.js';
import type { NlMessage } from '../../../src/native/rtnl.js';

/** a notification of nf_tables message `msg` for table `t` (nfgenmsg + NFTA_*_TABLE) */
function note(msg: number, t = 'awg'): NlMessage {
  const name = Buffer.from(t + '\0');
  const attrLen = 4 + name.length;
  const attr = Buffer.alloc((attrLen + 3) & ~3);
  attr.writeUInt16LE(attrLen, 0);
  attr.writeUInt16LE(1, 2);
  name.copy(attr, 4);
  const payload = Buffer.concat([Buffer.from([1, 0, 0, 0]), attr]);
  return { type: (10 << 8) | msg, flags: 0, seq: 0, portid: 0, payload };
}

describe('nf_tables notifications', () => {
  it.each([
    [0, 'newtable'],
    [2, 'deltable'],
    [6, 'newrule'],
    [12, 'newsetelem'],
    [14, 'delsetelem'],
    [18, 'newobj'],
    [20, 'delobj'],
    [22, 'newflowtable'],
    [24, 'delflowtable'],
  ])('message %i is %s of the table', (msg, change) => {
    expect(parseNftEvent(note(msg))).toMatchObject({ change, table: 'awg', family: 1 });
  });

  it.each([15, 16, 17, 19, 21])('message %i (NEWGEN, GETGEN, TRACE, GETOBJ…) is skipped', (msg) => {
    expect(parseNftEvent(note(msg))).toBeUndefined();
  });
});

describe('withoutOwnNftNotifications', () => {
  it('makes every own listener leave once, nested loads included, and rejoin after (also on a throw)', () => {
    const log: string[] = [];
    const a = ownNftListener({ leave: () => log.push('a-'), join: () => log.push('a+') });
    const b = ownNftListener({
      leave: () => {
        throw new Error('cannot leave');
      },
      join: () => log.push('b+'),
    });
    try {
      const v = withoutOwnNftNotifications(() => {
        log.push('load');
        return withoutOwnNftNotifications(() => 7);
      });
      expect(v).toBe(7);
      // b could not leave: it stays in the group and is not asked to join
      expect(log).toEqual(['a-', 'load', 'a+']);
      log.length = 0;
      expect(() =>
        withoutOwnNftNotifications(() => {
          throw new Error('load failed');
        }),
      ).toThrow('load failed');
      expect(log).toEqual(['a-', 'a+']);
      // a listener removed during the load (its socket closed) is not rejoined
      log.length = 0;
      withoutOwnNftNotifications(() => a());
      expect(log).toEqual(['a-']);
    } finally {
      a();
      b();
    }
  });
});
