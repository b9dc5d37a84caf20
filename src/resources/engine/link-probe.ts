/**
 * The data probe through an external engine (docs/architecture.md, "The data path"): the
 * daemon cannot hand wireguard-go or amneziawg-go a packet to seal, so it sends one through
 * the engine's link — a UDP datagram from the tunnel's address, TTL (hop limit) 1, to TEST-NET
 * (192.0.2.1 / 2001:db8::1, port 9), on a socket bound to the link (SO_BINDTODEVICE: it goes
 * nowhere else). The engine seals it to the peer whose allowed IPs hold TEST-NET; the peer's
 * kernel answers at once (time exceeded / unreachable) and never forwards it. Best effort:
 * any error (the link or the address gone) is dropped, the health tick tries again.
 */
import { createSocket } from 'node:dgram';

/** 20 bytes: a 48-byte IPv4 packet, sealed to 80 bytes — no sum of handshake/keepalive sizes */
const PAYLOAD = Buffer.alloc(20);

export function sendLinkProbe(link: string, from: string): void {
  const v6 = from.includes(':');
  const s = createSocket(v6 ? 'udp6' : 'udp4');
  const close = () => {
    try {
      s.close();
    } catch {
      /* closed */
    }
  };
  s.on('error', close);
  s.bind({ address: from, port: 0 }, () => {
    void import('../../native/bind-device.js')
      .then(({ bindDgramToDevice }) => {
        bindDgramToDevice(s, link);
        s.setTTL(1);
        s.send(PAYLOAD, 9, v6 ? '2001:db8::1' : '192.0.2.1', close);
      })
      .catch(close);
  });
}
