/**
 * The original destination of a TCP connection PF's `rdr` sent to our listener: DIOCNATLOOK
 * on /dev/pf (macOS's counterpart of SO_ORIGINAL_DST, native/origdst.ts). NEVER RUN ON A
 * MAC; the struct is tested on bytes. Facts (Apple's bsd/net/pfvar.h, with the Apple
 * extensions): struct pfioc_natlook { pf_addr saddr, daddr, rsaddr, rdaddr (16 bytes each,
 * at 0/16/32/48); union pf_state_xport sxport, dxport, rsxport, rdxport (4 bytes each, the
 * u16 port first in network order, at 64/68/72/76); u8 af (80), proto (81), proto_variant
 * (82), direction (83) } = 84 bytes; DIOCNATLOOK = _IOWR('D', 23, struct pfioc_natlook) =
 * 0xc0544417; direction PF_OUT = 2 (enum { PF_INOUT, PF_IN, PF_OUT }): the redirected packets
 * left on lo0, so the state is looked up from the client (saddr) to where it arrived (daddr);
 * the kernel fills rdaddr/rdxport. ENOENT: no such state (the connection was not redirected).
 */
import { AwgError } from '../../errors.js';
import {
  DIOCNATLOOK,
  PFIOC_NATLOOK_SIZE,
  PF_IN,
  PF_OUT,
  decodeNatlook,
  decodeNatlookSource,
  encodeNatlook,
  type Endpoint,
} from './layouts.js';
import { D, check, close, ioctl, open } from './libsystem.js';

export {
  DIOCNATLOOK,
  PFIOC_NATLOOK_SIZE,
  PF_IN,
  PF_OUT,
  decodeNatlook,
  decodeNatlookSource,
  encodeNatlook,
  type Endpoint,
};

export const PF_DEVICE = '/dev/pf';

/**
 * `local`: the accepted socket's local end (our listener, where PF delivered it); `remote`:
 * its remote end (the client). Returns where the client was really going.
 */
export function originalDstDarwin(local: Endpoint, remote: Endpoint, family: 4 | 6): Endpoint {
  const nl = natlookRequest(local, remote, family);
  const fd = check(`open(${PF_DEVICE})`, open(PF_DEVICE, D.O_RDONLY));
  try {
    const r = ioctl(fd, DIOCNATLOOK, nl);
    if (r === -D.ENOENT)
      throw new AwgError(
        'driver',
        `DIOCNATLOOK ${remote.address}:${remote.port} → ${local.address}:${local.port}: no PF state (not redirected)`,
      );
    check(`DIOCNATLOOK ${remote.address}:${remote.port} → ${local.address}:${local.port}`, r);
    return decodeNatlook(nl);
  } finally {
    close(fd);
  }
}

/**
 * A datagram of a UDP flow the anchor sent to our relay (platform/darwin/pf-flow.ts: `nat` on
 * lo0 gave it the loopback source `peer`, `rdr` sent it to `listener`): where it was going
 * (PF_OUT on the rdr state: rdaddr = its gwy, as for TCP) and the app socket that sent it
 * (PF_IN on the nat state, asked from the destination to `peer`: rsaddr = its lan). ENOENT
 * from either: not our flow.
 */
export function udpOriginDarwin(
  peer: Endpoint,
  listener: Endpoint,
  family: 4 | 6,
): { dst: Endpoint; app: Endpoint } {
  const fd = check(`open(${PF_DEVICE})`, open(PF_DEVICE, D.O_RDONLY));
  try {
    const ask = (nl: Uint8Array, what: string) => {
      const r = ioctl(fd, DIOCNATLOOK, nl);
      if (r === -D.ENOENT)
        throw new AwgError('driver', `DIOCNATLOOK udp ${what}: no PF state (not redirected)`);
      check(`DIOCNATLOOK udp ${what}`, r);
      return nl;
    };
    const [req1, req2] = udpNatlookRequests(peer, listener, family);
    const dst = decodeNatlook(ask(req1, `${peer.address}:${peer.port} → ${listener.port}`));
    const app = decodeNatlookSource(ask(req2(dst), `${dst.address}:${dst.port} → ${peer.port}`));
    return { dst, app };
  } finally {
    close(fd);
  }
}

/** the two lookups of udpOriginDarwin: the rdr state's, then (given the destination) the nat state's */
export function udpNatlookRequests(
  peer: Endpoint,
  listener: Endpoint,
  family: 4 | 6,
): [Uint8Array, (dst: Endpoint) => Uint8Array] {
  const p = unmapped(peer, family);
  return [
    encodeNatlook(p, unmapped(listener, family), 'udp', PF_OUT),
    (dst) => encodeNatlook(p, dst, 'udp', PF_IN),
  ];
}

/** The DIOCNATLOOK request for an accepted TCP connection (IPv4-mapped addresses unmapped). */
export function natlookRequest(local: Endpoint, remote: Endpoint, family: 4 | 6): Uint8Array {
  const nl = encodeNatlook(unmapped(remote, family), unmapped(local, family), 'tcp');
  if ((nl[80] === D.AF_INET6 ? 6 : 4) !== family)
    throw new AwgError('bug', `natlook: ${remote.address} → ${local.address} is not IPv${family}`);
  return nl;
}

/** a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; PF's state holds the IPv4 address */
function unmapped(e: Endpoint, family: 4 | 6): Endpoint {
  const m = family === 4 ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(e.address) : null;
  return m ? { address: m[1]!, port: e.port } : e;
}
