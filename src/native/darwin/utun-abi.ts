/**
 * utun's kernel interface (pure; platform/darwin/utun.ts keeps the link → utun registry).
 *
 * Creation (engine process, via koffi: libsystem.ts openUtun): `socket(PF_SYSTEM,
 * SOCK_DGRAM, SYSPROTO_CONTROL)`, `ioctl(fd, CTLIOCGINFO, {ctl_id: 0, ctl_name:
 * "com.apple.net.utun_control"})` to learn the control id, then `connect` with a sockaddr_ctl
 * whose sc_unit is N+1 for `utunN` (0 lets the kernel pick); `getsockopt(SYSPROTO_CONTROL,
 * UTUN_OPT_IFNAME)` returns the name. The interface lives exactly as long as that socket.
 * Every packet read or written carries a 4-byte big-endian address family header (AF_INET 2,
 * AF_INET6 30).
 */
export const PF_SYSTEM = 32;
export const AF_SYSTEM = 32;
export const SYSPROTO_CONTROL = 2;
export const AF_SYS_CONTROL = 2;
export { CTLIOCGINFO } from './layouts.js';
export const UTUN_CONTROL_NAME = 'com.apple.net.utun_control';
export const UTUN_OPT_IFNAME = 2;
/** sockaddr_ctl: sc_len u8, sc_family u8, ss_sysaddr u16, sc_id u32, sc_unit u32, sc_reserved u32[5] */
export const SOCKADDR_CTL_LEN = 32;
export const AF_HEADER_LEN = 4;
const AF_INET = 2;
const AF_INET6 = 30;

export function utunUnit(name: string): number {
  const m = /^utun(\d+)$/.exec(name);
  if (!m) throw new Error(`${name} is not a utun interface`);
  return Number(m[1]) + 1;
}

/** sockaddr_ctl bytes for connect(); unit 0 = first free utun. */
export function sockaddrCtl(ctlId: number, unit: number): Uint8Array {
  const b = new Uint8Array(SOCKADDR_CTL_LEN);
  const dv = new DataView(b.buffer);
  b[0] = SOCKADDR_CTL_LEN;
  b[1] = AF_SYSTEM;
  dv.setUint16(2, AF_SYS_CONTROL, true);
  dv.setUint32(4, ctlId, true);
  dv.setUint32(8, unit, true);
  return b;
}

/** Prefix for a packet written to utun: AF from the IP version nibble. */
export function afHeader(packet: Uint8Array): Uint8Array {
  const v = (packet[0] ?? 0) >> 4;
  const af = v === 6 ? AF_INET6 : v === 4 ? AF_INET : 0;
  if (!af) throw new Error(`not an IP packet (version ${v})`);
  return new Uint8Array([0, 0, 0, af]);
}

/** Strip the 4-byte header from a packet read from utun. */
export function stripAfHeader(frame: Uint8Array): { family: 4 | 6; packet: Uint8Array } {
  if (frame.length < AF_HEADER_LEN) throw new Error('utun frame shorter than its AF header');
  const af = new DataView(frame.buffer, frame.byteOffset).getUint32(0, false);
  if (af !== AF_INET && af !== AF_INET6) throw new Error(`unknown utun address family ${af}`);
  return { family: af === AF_INET ? 4 : 6, packet: frame.subarray(AF_HEADER_LEN) };
}
