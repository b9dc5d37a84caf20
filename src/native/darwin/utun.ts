/**
 * Opening a macOS utun (NEVER RUN ON A MAC; the layouts are tested on bytes):
 * `socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL)`; `ioctl(CTLIOCGINFO)` with a struct
 * ctl_info naming "com.apple.net.utun_control" to learn the control id; `connect` with a
 * sockaddr_ctl (utun-abi.ts sockaddrCtl) whose
 * sc_unit is N+1 for utunN, 0 for the first free one; `getsockopt(SYSPROTO_CONTROL,
 * UTUN_OPT_IFNAME)` names it; the fd is made non-blocking. The interface lives as long as
 * the socket.
 */
import {
  CTLIOCGINFO,
  IFNAMSIZ,
  SIOCGIFMTU,
  decodeCtlInfoId,
  decodeIfname,
  decodeIfreqMtu,
  encodeCtlInfo,
  encodeIfreq,
} from './layouts.js';
import {
  D,
  check,
  close,
  connect,
  getsockopt,
  ioctl,
  setNonBlocking,
  socket,
} from './libsystem.js';
import {
  PF_SYSTEM,
  SYSPROTO_CONTROL,
  UTUN_CONTROL_NAME,
  UTUN_OPT_IFNAME,
  sockaddrCtl,
} from './utun-abi.js';

export {
  CTLIOCGINFO,
  CTL_INFO_SIZE,
  MAX_KCTL_NAME,
  decodeCtlInfoId,
  encodeCtlInfo,
  decodeIfname,
} from './layouts.js';

export interface UtunHandle {
  fd: number;
  ifname: string;
}

/** Open a utun: `unit` N+1 asks for utunN, 0 (default) for the first free one. The caller owns `fd`. */
export function openUtun(unit = 0): UtunHandle {
  const fd = check(
    'socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL)',
    socket(PF_SYSTEM, D.SOCK_DGRAM, SYSPROTO_CONTROL),
  );
  try {
    const info = encodeCtlInfo(UTUN_CONTROL_NAME);
    check('ioctl(CTLIOCGINFO)', ioctl(fd, CTLIOCGINFO, info));
    check('connect(utun_control)', connect(fd, sockaddrCtl(decodeCtlInfoId(info), unit)));
    const name = new Uint8Array(IFNAMSIZ);
    const len = check(
      'getsockopt(UTUN_OPT_IFNAME)',
      getsockopt(fd, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, name),
    );
    setNonBlocking(fd);
    return { fd, ifname: decodeIfname(name, len) };
  } catch (e) {
    close(fd);
    throw e;
  }
}

/** An interface's MTU (SIOCGIFMTU on a throwaway AF_INET datagram socket). */
export function interfaceMtu(ifname: string): number {
  const fd = check('socket(AF_INET)', socket(D.AF_INET, D.SOCK_DGRAM, 0));
  try {
    const req = encodeIfreq(ifname);
    check(`ioctl(SIOCGIFMTU ${ifname})`, ioctl(fd, SIOCGIFMTU, req));
    return decodeIfreqMtu(req);
  } finally {
    close(fd);
  }
}
