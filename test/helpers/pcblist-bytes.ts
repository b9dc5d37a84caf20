/**
 * Synthetic `net.inet.{tcp,udp}.pcblist_n` buffers laid out per test/fixtures/macos/binary/
 * LAYOUTS.md §2 with the 13.0+ sizes (no real capture exists): for the walker's tests and
 * the flow router's process-lookup fake.
 */
import {
  XSO_INPCB,
  XSO_RCVBUF,
  XSO_SNDBUF,
  XSO_SOCKET,
  XSO_STATS,
  XSO_TCPCB,
} from '../../src/platform/darwin/pcblist.js';

export function sub(
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
export const xinpgen = (count: number) => sub(24, count);
export function inpcb(
  v6: boolean,
  laddr: number[],
  lport: number,
  faddr: number[],
  fport: number,
  gen = 0n,
) {
  return sub(104, XSO_INPCB, (dv, b) => {
    dv.setBigUint64(28, gen, true);
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
export const socket = (uid: number, lastPid: number, ePid: number) =>
  sub(104, XSO_SOCKET, (dv) => {
    dv.setUint32(64, uid, true);
    dv.setInt32(68, lastPid, true);
    dv.setInt32(72, ePid, true);
  });
export const rest = (tcpState?: number) => [
  sub(32, XSO_RCVBUF),
  sub(32, XSO_SNDBUF),
  sub(136, XSO_STATS),
  ...(tcpState === undefined ? [] : [sub(204, XSO_TCPCB, (dv) => dv.setInt32(36, tcpState, true))]),
];
export const cat = (parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));
