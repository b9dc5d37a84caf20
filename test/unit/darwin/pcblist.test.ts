import { describe, expect, it } from 'vitest';
import { decodePcblist } from '../../../src/platform/darwin/pcblist.js';

import { cat, inpcb, rest, socket, xinpgen } from '../../helpers/pcblist-bytes.js';

describe('pcblist_n walker (layout-only)', () => {
  it('decodes TCP v4 and v6 records with owner pids and states; stops at the trailer', () => {
    const v6l = [0xfd, 0, ...Array(13).fill(0), 2];
    const v6f = [0xfd, 0, ...Array(13).fill(0), 1];
    const buf = cat([
      xinpgen(2),
      inpcb(false, [192, 168, 1, 221], 54860, [140, 82, 113, 26], 443),
      socket(501, 687, 687),
      ...rest(4),
      inpcb(true, v6l, 5000, v6f, 51820),
      socket(0, 1, 1),
      ...rest(1),
      xinpgen(2),
    ]);
    expect(decodePcblist(buf, 'tcp')).toEqual([
      {
        family: 4,
        generation: '0',
        localAddress: '192.168.1.221',
        localPort: 54860,
        foreignAddress: '140.82.113.26',
        foreignPort: 443,
        uid: 501,
        lastPid: 687,
        effectivePid: 687,
        state: 'ESTABLISHED',
      },
      {
        family: 6,
        generation: '0',
        localAddress: 'fd00::2',
        localPort: 5000,
        foreignAddress: 'fd00::1',
        foreignPort: 51820,
        uid: 0,
        lastPid: 1,
        effectivePid: 1,
        state: 'LISTEN',
      },
    ]);
  });

  it('UDP records have no TCPCB; a truncated buffer is an error', () => {
    const buf = cat([
      xinpgen(1),
      inpcb(false, [0, 0, 0, 0], 5353, [0, 0, 0, 0], 0),
      socket(65, 300, 300),
      ...rest(),
      xinpgen(1),
    ]);
    expect(decodePcblist(buf, 'udp')).toEqual([
      {
        family: 4,
        generation: '0',
        localAddress: '0.0.0.0',
        localPort: 5353,
        foreignAddress: '0.0.0.0',
        foreignPort: 0,
        uid: 65,
        lastPid: 300,
        effectivePid: 300,
      },
    ]);
    expect(() => decodePcblist(buf.subarray(0, 100), 'udp')).toThrow(/overruns/);
  });
});
