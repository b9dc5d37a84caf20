import { describe, expect, it } from 'vitest';
import {
  decodePcblist,
  XSO_INPCB,
  XSO_RCVBUF,
  XSO_SNDBUF,
  XSO_SOCKET,
  XSO_STATS,
  XSO_TCPCB,
} from '../../../src/platform/darwin/pcblist.js';

// Synthetic buffers laid out per LAYOUTS.md §2 with the 13.0+ sizes (no real capture exists).
function sub(
  len: number,
  kind: number,
  fill: (dv: DataView, b: Uint8Array) => void = () => {},
): Uint8Array {
  const b = new Uint8Array((len + 7) & ~7);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, len, true);
  dv.setUint32(4, kind, true);
  fill(dv, b);
  return b;
}
const xinpgen = (count: number) => sub(24, count);
function inpcb(v6: boolean, laddr: number[], lport: number, faddr: number[], fport: number) {
  return sub(104, XSO_INPCB, (dv, b) => {
    dv.setUint16(16, fport, false);
    dv.setUint16(18, lport, false);
    b[44] = v6 ? 0x2 : 0x1;
    if (v6) {
      b.set(faddr, 48);
      b.set(laddr, 64);
    } else {
      b.set(faddr, 60);
      b.set(laddr, 76);
    }
  });
}
const socket = (uid: number, lastPid: number, ePid: number) =>
  sub(104, XSO_SOCKET, (dv) => {
    dv.setUint32(64, uid, true);
    dv.setInt32(68, lastPid, true);
    dv.setInt32(72, ePid, true);
  });
const rest = (tcpState?: number) => [
  sub(32, XSO_RCVBUF),
  sub(32, XSO_SNDBUF),
  sub(136, XSO_STATS),
  ...(tcpState === undefined ? [] : [sub(204, XSO_TCPCB, (dv) => dv.setInt32(36, tcpState, true))]),
];
const cat = (parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

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
