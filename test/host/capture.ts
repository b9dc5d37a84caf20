/**
 * tcpdump on the lab's bridge, and what a kill switch allows out of the host: the frames the
 * host sends (its MAC) that are neither link control (ARP, DHCP, DHCPv6, IPv6 neighbour and
 * router discovery, MLD) nor WireGuard to the endpoint are outside the tunnel.
 */
import { nsSpawn, type NsProcess } from '../helpers/netns.js';
import { LAN, VPN, until } from './lab.js';

export interface Frame {
  line: string;
  /** why it is allowed, or undefined: outside the tunnel */
  allowed?: 'arp' | 'dhcp' | 'nd' | 'wireguard' | undefined;
}

/** classifies one `tcpdump -n -e -tt -l` line of a frame the host sent; pure */
export function classify(line: string): Frame {
  const allowed = (a: Frame['allowed']): Frame => ({ line, allowed: a });
  if (/ethertype ARP/.test(line)) return allowed('arp');
  if (/ethertype IPv4/.test(line)) {
    if (/\.68 > [\d.]+\.67: /.test(line)) return allowed('dhcp');
    if (new RegExp(`> ${LAN.router.replace(/\./g, '\\.')}\\.${VPN.port}: UDP`).test(line))
      return allowed('wireguard');
    // the host's kernel answering a WireGuard datagram of the endpoint while no socket has the
    // port (the daemon restarting in an upgrade): port unreachable, to the endpoint, about the
    // tunnel's own flow — part of the WireGuard exchange with the endpoint, nothing of the apps
    if (
      new RegExp(
        `> ${LAN.router.replace(/\./g, '\\.')}: ICMP [\\d.]+ udp port \\d+ unreachable`,
      ).test(line)
    )
      return allowed('wireguard');
  }
  if (/ethertype IPv6/.test(line)) {
    if (
      /ICMP6, (router solicitation|neighbor solicitation|neighbor advertisement|multicast listener report)/.test(
        line,
      )
    )
      return allowed('nd');
    if (/\.546 > ff02::1:2\.547: /.test(line)) return allowed('dhcp');
  }
  return { line };
}

export class Capture {
  private constructor(private readonly p: NsProcess) {}

  /** tcpdump on the lab's bridge, listening when this resolves */
  static async start(labNs: string): Promise<Capture> {
    const p = nsSpawn(labNs, 'tcpdump', ['-i', 'br0', '-n', '-e', '-tt', '-l', '-s', '256']);
    await until('tcpdump to listen', async () => p.output().includes('listening on'), 20_000, 20);
    return new Capture(p);
  }

  /** the frames the host sent so far */
  fromHost(): Frame[] {
    const mac = LAN.hostMac.toLowerCase();
    return this.p
      .output()
      .split('\n')
      .filter((l) => l.split(' ')[1]?.toLowerCase() === mac)
      .map(classify);
  }

  /** frames of the host outside the tunnel so far */
  leaks(): Frame[] {
    return this.fromHost().filter((f) => !f.allowed);
  }

  /** resolves when a frame the host sent matches `pred` */
  async waitFor(what: string, pred: (f: Frame) => boolean, ms = 60_000): Promise<Frame> {
    return until(what, async () => this.fromHost().find(pred), ms, 50);
  }

  async stop(): Promise<Frame[]> {
    await this.p.kill(1000);
    return this.fromHost();
  }
}
