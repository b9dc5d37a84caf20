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
  PF_OUT,
  decodeNatlook,
  encodeNatlook,
  type Endpoint,
} from './layouts.js';
import { D, check, close, ioctl, open } from './libsystem.js';

export { DIOCNATLOOK, PFIOC_NATLOOK_SIZE, PF_OUT, decodeNatlook, encodeNatlook, type Endpoint };

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
