/**
 * Linux's WireGuard module through netlink (koffi sockets of netlink.ts): the family id of
 * "wireguard", WG_CMD_GET_DEVICE / WG_CMD_SET_DEVICE (messages of wgnl.ts), and the
 * `wireguard` link itself (RTM_NEWLINK of rtnl.ts). Sockets live in the namespace they were
 * opened in (`netns`), like every link driver step.
 */
import { AwgError } from '../errors.js';
import { E, SyscallError, errnoName } from './libc.js';
import { NetlinkSocket } from './netlink.js';
import { buildGetFamily, NETLINK_GENERIC, parseFamilyId } from './genl.js';
import { buildNewLink } from './rtnl.js';
import {
  buildGetDevice,
  buildSetDevice,
  parseGetDevice,
  WG_GENL_NAME,
  type WgDevice,
  type WgDeviceSet,
} from './wgnl.js';

export interface WgKernelOptions {
  /** network namespace name or path (default: this process's) */
  netns?: string;
}

function withGenl<T>(o: WgKernelOptions, fn: (sock: NetlinkSocket, family: number) => T): T {
  const sock = NetlinkSocket.open({
    protocol: NETLINK_GENERIC,
    ...(o.netns ? { netns: o.netns } : {}),
  });
  try {
    return fn(sock, familyId(sock, WG_GENL_NAME));
  } finally {
    sock.close();
  }
}

/** The generic netlink family id of `name`; SyscallError ENOENT when the kernel has no such family. */
export function familyId(sock: NetlinkSocket, name: string): number {
  for (const m of sock.request(buildGetFamily(name, sock.nextSeq(), sock.portid))) {
    const id = parseFamilyId(m);
    if (id !== undefined) return id;
  }
  throw new AwgError('driver', `generic netlink: no family id in the answer for "${name}"`);
}

/** The device behind the wireguard link `ifname` (ENODEV: no such link; EOPNOTSUPP: not wireguard). */
export function wgGetDevice(ifname: string, o: WgKernelOptions = {}): WgDevice {
  return withGenl(o, (sock, family) =>
    parseGetDevice(
      sock
        .request(buildGetDevice(family, ifname, sock.nextSeq(), sock.portid))
        .filter((m) => m.type === family),
    ),
  );
}

/** Applies `set` (one request per message it takes; each is acknowledged before the next). */
export function wgSetDevice(set: WgDeviceSet, o: WgKernelOptions = {}): void {
  withGenl(o, (sock, family) => {
    const msgs = buildSetDevice(family, set, sock.nextSeq(), sock.portid);
    for (let i = 1; i < msgs.length; i++) sock.nextSeq();
    for (const m of msgs) sock.request(m);
  });
}

/** A new `wireguard` link (EEXIST when the name is taken; EOPNOTSUPP without the module). */
export function createWireguardLink(
  name: string,
  o: WgKernelOptions & { mtu?: number } = {},
): void {
  const sock = NetlinkSocket.open(o.netns ? { netns: o.netns } : {});
  try {
    sock.request(
      buildNewLink(
        { name, kind: 'wireguard', ...(o.mtu !== undefined ? { mtu: o.mtu } : {}) },
        sock.nextSeq(),
        sock.portid,
      ),
    );
  } finally {
    sock.close();
  }
}

/**
 * Why this kernel cannot serve `engine: kernel`, or undefined when it can. Asks the control
 * family for "wireguard", which loads an installed module that is not loaded yet; nothing is
 * created.
 */
export function kernelWireguardProblem(o: WgKernelOptions = {}): string | undefined {
  let sock: NetlinkSocket;
  try {
    sock = NetlinkSocket.open({
      protocol: NETLINK_GENERIC,
      ...(o.netns ? { netns: o.netns } : {}),
    });
  } catch (e) {
    return `no generic netlink socket: ${(e as Error).message}`;
  }
  try {
    familyId(sock, WG_GENL_NAME);
    return undefined;
  } catch (e) {
    if (e instanceof SyscallError && e.errno === E.ENOENT)
      return `generic netlink has no "${WG_GENL_NAME}" family: ${errnoName(e.errno)}, the module is neither loaded nor loadable`;
    return (e as Error).message;
  } finally {
    sock.close();
  }
}
