/**
 * Linux's in-kernel WireGuard over generic netlink (family "wireguard", version 1): the
 * WG_CMD_SET_DEVICE request and the WG_CMD_GET_DEVICE dump, encoded and decoded. Pure: no
 * I/O (the socket is wg-kernel.ts).
 *
 * Facts from the uapi header `linux/wireguard.h` and the module's netlink.c:
 * - commands: GET_DEVICE 0 (only as NLM_F_REQUEST | NLM_F_DUMP), SET_DEVICE 1; the device is
 *   named by WGDEVICE_A_IFINDEX or WGDEVICE_A_IFNAME, never both (EBADR); a link that is not
 *   a wireguard link answers EOPNOTSUPP, a missing one ENODEV.
 * - WGDEVICE_A_*: IFINDEX 1 (u32), IFNAME 2 (NUL string), PRIVATE_KEY 3 (32 bytes; zeros
 *   remove it), PUBLIC_KEY 4, FLAGS 5 (u32: WGDEVICE_F_REPLACE_PEERS 1), LISTEN_PORT 6 (u16),
 *   FWMARK 7 (u32), PEERS 8 (nested array).
 * - WGPEER_A_*: PUBLIC_KEY 1, PRESHARED_KEY 2 (zeros remove it), FLAGS 3 (u32: REMOVE_ME 1,
 *   REPLACE_ALLOWEDIPS 2, UPDATE_ONLY 4), ENDPOINT 4 (struct sockaddr_in of 16 bytes or
 *   sockaddr_in6 of 28; other lengths are ignored), PERSISTENT_KEEPALIVE_INTERVAL 5 (u16),
 *   LAST_HANDSHAKE_TIME 6 (struct __kernel_timespec: s64 sec, s64 nsec), RX_BYTES 7, TX_BYTES 8
 *   (u64, 8-aligned: the kernel may put a pad attribute of type 0 before them), ALLOWEDIPS 9
 *   (nested array), PROTOCOL_VERSION 10 (u32, 1).
 * - WGALLOWEDIP_A_*: FAMILY 1 (u16 AF_INET 2 / AF_INET6 10), IPADDR 2 (4 or 16 bytes),
 *   CIDR_MASK 3 (u8), FLAGS 4 (u32: REMOVE_ME 1).
 * - Array entries are nests of type 0; every nest carries NLA_F_NESTED.
 * - A dump spreads a device over several messages (NLM_F_MULTI): the first carries the device
 *   attributes, later ones only PEERS; a peer whose allowed IPs do not fit continues in the
 *   next message with only PUBLIC_KEY and ALLOWEDIPS. Readers join adjacent entries of one
 *   peer. A set that does not fit one message is sent as several, REPLACE_PEERS and a peer's
 *   REPLACE_ALLOWEDIPS only in its first; nla_len is 16 bits, so a nest stays below 64 KiB.
 */
import {
  attrList,
  GENL_HDRLEN,
  genlMessage,
  NLA_HDRLEN,
  nlaListSize,
  nlaNest,
  nlaSize,
  nlaStr,
  nlaU16,
  nlaU32,
  nlaU8,
  parseGenl,
  type Nla,
  type RawAttr,
} from './genl.js';
import {
  AF_INET,
  AF_INET6,
  formatAddr,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
  parseAddr,
  type NlMessage,
} from './rtnl.js';

export const WG_GENL_NAME = 'wireguard';
export const WG_GENL_VERSION = 1;
export const WG_KEY_LEN = 32;

export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;

export const WGDEVICE_F_REPLACE_PEERS = 1;
export const WGDEVICE_A_IFINDEX = 1;
export const WGDEVICE_A_IFNAME = 2;
export const WGDEVICE_A_PRIVATE_KEY = 3;
export const WGDEVICE_A_PUBLIC_KEY = 4;
export const WGDEVICE_A_FLAGS = 5;
export const WGDEVICE_A_LISTEN_PORT = 6;
export const WGDEVICE_A_FWMARK = 7;
export const WGDEVICE_A_PEERS = 8;

export const WGPEER_F_REMOVE_ME = 1;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 2;
export const WGPEER_F_UPDATE_ONLY = 4;
export const WGPEER_A_PUBLIC_KEY = 1;
export const WGPEER_A_PRESHARED_KEY = 2;
export const WGPEER_A_FLAGS = 3;
export const WGPEER_A_ENDPOINT = 4;
export const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5;
export const WGPEER_A_LAST_HANDSHAKE_TIME = 6;
export const WGPEER_A_RX_BYTES = 7;
export const WGPEER_A_TX_BYTES = 8;
export const WGPEER_A_ALLOWEDIPS = 9;
export const WGPEER_A_PROTOCOL_VERSION = 10;

export const WGALLOWEDIP_F_REMOVE_ME = 1;
export const WGALLOWEDIP_A_FAMILY = 1;
export const WGALLOWEDIP_A_IPADDR = 2;
export const WGALLOWEDIP_A_CIDR_MASK = 3;
export const WGALLOWEDIP_A_FLAGS = 4;

/** sizeof(struct sockaddr_in), sizeof(struct sockaddr_in6) */
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

/**
 * What the set messages are cut at. The kernel takes far larger ones; a nest must stay below
 * nla_len's 64 KiB, and a smaller cut keeps each message inside a default socket buffer.
 */
export const SET_MESSAGE_MAX = 32 * 1024;

/** One peer of a WG_CMD_SET_DEVICE; keys are 32 bytes. */
export interface WgPeerSet {
  publicKey: Buffer;
  /** WGPEER_F_REMOVE_ME: nothing else of the peer is sent */
  remove?: boolean;
  /** WGPEER_F_REPLACE_ALLOWEDIPS: the list below replaces the peer's allowed IPs */
  replaceAllowedIps?: boolean;
  /** all zeros remove it; absent: unchanged */
  presharedKey?: Buffer;
  /** an IP address (never a host name: resolve first) and port */
  endpoint?: { address: string; port: number };
  persistentKeepalive?: number;
  /** CIDRs (`10.0.0.0/8`, `fd00::/64`) */
  allowedIps?: readonly string[];
}

export interface WgDeviceSet {
  ifname: string;
  /** all zeros remove it; absent: unchanged */
  privateKey?: Buffer;
  listenPort?: number;
  fwmark?: number;
  /** WGDEVICE_F_REPLACE_PEERS: the peers below replace all the device has */
  replacePeers?: boolean;
  peers: readonly WgPeerSet[];
}

/** A device as the GET_DEVICE dump describes it (peers joined across messages). */
export interface WgDevice {
  ifindex: number;
  ifname: string;
  /** absent: the device has no private key */
  privateKey?: Buffer;
  publicKey?: Buffer;
  listenPort: number;
  fwmark: number;
  peers: WgPeer[];
}

export interface WgPeer {
  publicKey: Buffer;
  presharedKey?: Buffer;
  /** `192.0.2.1:51820`, `[2001:db8::1]:51820` (as wg and UAPI print them) */
  endpoint?: string;
  persistentKeepalive: number;
  /** 0/0: never */
  lastHandshake: { sec: bigint; nsec: bigint };
  rxBytes: bigint;
  txBytes: bigint;
  protocolVersion?: number;
  /** canonical CIDRs in the kernel's order */
  allowedIps: string[];
}

function key(type: number, k: Buffer, what: string): Nla {
  if (k.length !== WG_KEY_LEN) throw new RangeError(`${what}: ${k.length} bytes, not 32`);
  return { type, value: k };
}

/** struct sockaddr_in / sockaddr_in6: family in host order, port in network order. */
export function encodeSockaddr(address: string, port: number): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`endpoint port ${port}`);
  const ip = parseAddr(address);
  if (ip.length === 4) {
    const b = Buffer.alloc(SOCKADDR_IN_LEN);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    ip.copy(b, 4);
    return b;
  }
  // sin6_flowinfo and sin6_scope_id stay 0: endpoints carry no zone
  const b = Buffer.alloc(SOCKADDR_IN6_LEN);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  ip.copy(b, 8);
  return b;
}

/** sockaddr_in / sockaddr_in6 → `ip:port` / `[ip]:port`; undefined for anything else (AF_UNSPEC: none). */
export function decodeSockaddr(b: Buffer): string | undefined {
  if (b.length < 2) return undefined;
  const family = b.readUInt16LE(0);
  if (family === AF_INET && b.length >= SOCKADDR_IN_LEN)
    return `${formatAddr(b.subarray(4, 8))}:${b.readUInt16BE(2)}`;
  if (family === AF_INET6 && b.length >= SOCKADDR_IN6_LEN)
    return `[${formatAddr(b.subarray(8, 24))}]:${b.readUInt16BE(2)}`;
  return undefined;
}

/** `host:port` / `[v6]:port` with an IP literal → its parts. */
export function splitEndpoint(endpoint: string): { address: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new RangeError(`endpoint ${JSON.stringify(endpoint)} is not ip:port`);
  return { address: m[1] ?? m[2]!, port: Number(m[3]) };
}

function allowedIpNest(cidr: string): Nla {
  const [a, l] = cidr.split('/') as [string, string | undefined];
  const addr = parseAddr(a);
  const bits = addr.length * 8;
  const len = l === undefined ? bits : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > bits)
    throw new RangeError(`allowed IP ${cidr}: prefix length`);
  return nlaNest(0, [
    nlaU16(WGALLOWEDIP_A_FAMILY, addr.length === 4 ? AF_INET : AF_INET6),
    { type: WGALLOWEDIP_A_IPADDR, value: addr },
    nlaU8(WGALLOWEDIP_A_CIDR_MASK, len),
  ]);
}

/** A peer's attributes but its allowed IPs; `first`: the first fragment of this peer. */
function peerHead(p: WgPeerSet, first: boolean): Nla[] {
  const out: Nla[] = [key(WGPEER_A_PUBLIC_KEY, p.publicKey, 'peer public key')];
  if (!first) return out;
  const flags =
    (p.remove ? WGPEER_F_REMOVE_ME : 0) | (p.replaceAllowedIps ? WGPEER_F_REPLACE_ALLOWEDIPS : 0);
  if (flags) out.push(nlaU32(WGPEER_A_FLAGS, flags));
  if (p.remove) return out;
  if (p.presharedKey) out.push(key(WGPEER_A_PRESHARED_KEY, p.presharedKey, 'preshared key'));
  if (p.endpoint)
    out.push({
      type: WGPEER_A_ENDPOINT,
      value: encodeSockaddr(p.endpoint.address, p.endpoint.port),
    });
  if (p.persistentKeepalive !== undefined)
    out.push(nlaU16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p.persistentKeepalive));
  return out;
}

/**
 * WG_CMD_SET_DEVICE as one or more messages (sequence numbers seq, seq+1, …), each at most
 * `max` bytes: the device's own attributes and REPLACE_PEERS only in the first, a peer split
 * across messages repeated by its public key with the rest of its allowed IPs (its flags and
 * other attributes only in its first part).
 */
export function buildSetDevice(
  family: number,
  set: WgDeviceSet,
  seq: number,
  portid = 0,
  max = SET_MESSAGE_MAX,
): Buffer[] {
  const out: Buffer[] = [];
  let head: Nla[] = [];
  let peers: Nla[] = [];
  const start = (first: boolean) => {
    head = [nlaStr(WGDEVICE_A_IFNAME, set.ifname)];
    if (first) {
      if (set.replacePeers) head.push(nlaU32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS));
      if (set.privateKey) head.push(key(WGDEVICE_A_PRIVATE_KEY, set.privateKey, 'private key'));
      if (set.listenPort !== undefined) head.push(nlaU16(WGDEVICE_A_LISTEN_PORT, set.listenPort));
      if (set.fwmark !== undefined) head.push(nlaU32(WGDEVICE_A_FWMARK, set.fwmark));
    }
    peers = [];
  };
  const flush = () => {
    const attrs = peers.length ? [...head, nlaNest(WGDEVICE_A_PEERS, peers)] : head;
    out.push(
      genlMessage(
        family,
        WG_CMD_SET_DEVICE,
        WG_GENL_VERSION,
        NLM_F_REQUEST | NLM_F_ACK,
        seq + out.length,
        portid,
        attrs,
      ),
    );
    start(false);
  };
  // bytes left for peer entries: the headers, the device's attributes, the PEERS nest header
  const capacity = () =>
    max - NLMSG_HDRLEN - GENL_HDRLEN - nlaListSize(head) - NLA_HDRLEN - nlaListSize(peers);
  start(true);
  for (const p of set.peers) {
    const ips = p.remove ? [] : (p.allowedIps ?? []).map(allowedIpNest);
    let i = 0;
    let firstPart = true;
    do {
      const h = peerHead(p, firstPart);
      // the entry's nest header and attributes, the ALLOWEDIPS nest header and one IP
      const fixed = NLA_HDRLEN + nlaListSize(h) + (i < ips.length ? NLA_HDRLEN : 0);
      if (fixed + (i < ips.length ? nlaSize(ips[i]!) : 0) > capacity()) {
        if (peers.length === 0 && head.length === 1)
          throw new RangeError(`a peer does not fit a ${max}-byte message`);
        flush();
        continue;
      }
      let size = fixed;
      const take: Nla[] = [];
      while (i < ips.length && size + nlaSize(ips[i]!) <= capacity()) {
        size += nlaSize(ips[i]!);
        take.push(ips[i++]!);
      }
      peers.push(nlaNest(0, take.length ? [...h, nlaNest(WGPEER_A_ALLOWEDIPS, take)] : h));
      firstPart = false;
      if (i < ips.length) flush();
    } while (i < ips.length);
  }
  if (peers.length || out.length === 0) flush();
  return out;
}

/** WG_CMD_GET_DEVICE dump request for the link `ifname`. */
export function buildGetDevice(family: number, ifname: string, seq: number, portid = 0): Buffer {
  return genlMessage(
    family,
    WG_CMD_GET_DEVICE,
    WG_GENL_VERSION,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
    seq,
    portid,
    [nlaStr(WGDEVICE_A_IFNAME, ifname)],
  );
}

const u16 = (a: RawAttr | undefined) => (a && a.value.length >= 2 ? a.value.readUInt16LE(0) : 0);
const u32 = (a: RawAttr | undefined) => (a && a.value.length >= 4 ? a.value.readUInt32LE(0) : 0);
const u64 = (a: RawAttr | undefined) =>
  a && a.value.length >= 8 ? a.value.readBigUInt64LE(0) : 0n;
const first = (attrs: RawAttr[], type: number) => attrs.find((a) => a.type === type);

function parseAllowedIp(value: Buffer): string | undefined {
  const a = attrList(value);
  const family = u16(first(a, WGALLOWEDIP_A_FAMILY));
  const ip = first(a, WGALLOWEDIP_A_IPADDR)?.value;
  const cidr = first(a, WGALLOWEDIP_A_CIDR_MASK)?.value[0];
  if (ip === undefined || cidr === undefined) return undefined;
  const bytes = family === AF_INET ? 4 : family === AF_INET6 ? 16 : 0;
  if (!bytes || ip.length < bytes) return undefined;
  return `${formatAddr(ip.subarray(0, bytes))}/${cidr}`;
}

function parsePeer(value: Buffer): WgPeer | undefined {
  const a = attrList(value);
  const pk = first(a, WGPEER_A_PUBLIC_KEY)?.value;
  if (!pk || pk.length !== WG_KEY_LEN) return undefined;
  const hs = first(a, WGPEER_A_LAST_HANDSHAKE_TIME)?.value;
  const psk = first(a, WGPEER_A_PRESHARED_KEY)?.value;
  const ep = first(a, WGPEER_A_ENDPOINT)?.value;
  const endpoint = ep ? decodeSockaddr(ep) : undefined;
  const pv = first(a, WGPEER_A_PROTOCOL_VERSION);
  const allowed = first(a, WGPEER_A_ALLOWEDIPS);
  return {
    publicKey: Buffer.from(pk),
    ...(psk && psk.length === WG_KEY_LEN ? { presharedKey: Buffer.from(psk) } : {}),
    ...(endpoint ? { endpoint } : {}),
    persistentKeepalive: u16(first(a, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL)),
    lastHandshake:
      hs && hs.length >= 16
        ? { sec: hs.readBigInt64LE(0), nsec: hs.readBigInt64LE(8) }
        : { sec: 0n, nsec: 0n },
    rxBytes: u64(first(a, WGPEER_A_RX_BYTES)),
    txBytes: u64(first(a, WGPEER_A_TX_BYTES)),
    ...(pv ? { protocolVersion: u32(pv) } : {}),
    allowedIps: allowed
      ? attrList(allowed.value).flatMap((x) => {
          const c = parseAllowedIp(x.value);
          return c ? [c] : [];
        })
      : [],
  };
}

/**
 * The messages of one GET_DEVICE dump (NLMSG_DONE excluded) → the device. Device attributes
 * come from whichever message carries them; a peer entry with only a public key and allowed
 * IPs right after the same peer continues it.
 */
export function parseGetDevice(messages: readonly NlMessage[]): WgDevice {
  const dev: WgDevice = { ifindex: 0, ifname: '', listenPort: 0, fwmark: 0, peers: [] };
  for (const m of messages) {
    const { attrs } = parseGenl(m);
    for (const a of attrs) {
      switch (a.type) {
        case WGDEVICE_A_IFINDEX:
          dev.ifindex = u32(a);
          break;
        case WGDEVICE_A_IFNAME: {
          const z = a.value.indexOf(0);
          dev.ifname = a.value.toString('utf8', 0, z < 0 ? a.value.length : z);
          break;
        }
        case WGDEVICE_A_PRIVATE_KEY:
          if (a.value.length === WG_KEY_LEN) dev.privateKey = Buffer.from(a.value);
          break;
        case WGDEVICE_A_PUBLIC_KEY:
          if (a.value.length === WG_KEY_LEN) dev.publicKey = Buffer.from(a.value);
          break;
        case WGDEVICE_A_LISTEN_PORT:
          dev.listenPort = u16(a);
          break;
        case WGDEVICE_A_FWMARK:
          dev.fwmark = u32(a);
          break;
        case WGDEVICE_A_PEERS:
          for (const e of attrList(a.value)) {
            const p = parsePeer(e.value);
            if (!p) continue;
            const last = dev.peers.at(-1);
            if (last && last.publicKey.equals(p.publicKey)) last.allowedIps.push(...p.allowedIps);
            else dev.peers.push(p);
          }
          break;
      }
    }
  }
  return dev;
}
