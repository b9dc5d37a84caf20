/** The model's interfaces as `ifconfig` lists and changes them. */
import ipaddr from 'ipaddr.js';
import type { ExecResult } from '../../../src/util/exec.js';
import type { MacHost } from './model.js';
import { fail, ok } from './state.js';

/** `ifconfig` in the layout of ifconfig/ifconfig-10.14.6-jc.txt and the utun captures */
export function ifconfigText(host: MacHost): string {
  const hex = (len: number) =>
    `0x${(len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0).toString(16).padStart(8, '0')}`;
  const FLAG_BITS: [number, string][] = [
    [0x1, 'UP'],
    [0x2, 'BROADCAST'],
    [0x8, 'LOOPBACK'],
    [0x10, 'POINTOPOINT'],
    [0x20, 'SMART'],
    [0x40, 'RUNNING'],
    [0x800, 'SIMPLEX'],
    [0x8000, 'MULTICAST'],
  ];
  const out: string[] = [];
  for (const i of [...host.interfaces.values()].sort((a, b) => a.index - b.index)) {
    const p2p = i.name.startsWith('utun');
    const lo = i.name === 'lo0';
    const bits = (i.up ? 0x1 : 0) | 0x40 | 0x8000 | (lo ? 0x8 : p2p ? 0x10 : 0x2 | 0x20 | 0x800);
    out.push(
      `${i.name}: flags=${bits.toString(16)}<${FLAG_BITS.filter(([b]) => bits & b)
        .map(([, n]) => n)
        .join(',')}> mtu ${i.mtu}`,
    );
    out.push(
      lo
        ? '\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>'
        : p2p
          ? '\toptions=6460<TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>'
          : '\toptions=400<CHANNEL_IO>',
    );
    if (!lo && !p2p) out.push(`\tether f0:18:98:03:d9:${i.index.toString(16).padStart(2, '0')} `);
    const scoped = i.inet6.filter((a) => a.address.startsWith('fe80'));
    const global = i.inet6.filter((a) => !a.address.startsWith('fe80'));
    for (const a of lo ? [] : scoped)
      out.push(
        `\tinet6 ${a.address}%${i.name} prefixlen ${a.prefixlen} scopeid 0x${i.index.toString(16)} `,
      );
    for (const a of i.inet) {
      const bcast = ipaddr.IPv4.broadcastAddressFromCIDR(`${a.address}/${a.prefixlen}`).toString();
      out.push(
        p2p
          ? `\tinet ${a.address} --> ${a.address} netmask ${hex(a.prefixlen)} `
          : lo
            ? `\tinet ${a.address} netmask ${hex(a.prefixlen)} `
            : `\tinet ${a.address} netmask ${hex(a.prefixlen)} broadcast ${bcast}`,
      );
    }
    for (const a of global)
      out.push(
        `\tinet6 ${a.address} prefixlen ${a.prefixlen} ${lo || p2p ? '' : 'autoconf secured '}`,
      );
    for (const a of lo ? scoped : [])
      out.push(
        `\tinet6 ${a.address}%${i.name} prefixlen ${a.prefixlen} scopeid 0x${i.index.toString(16)} `,
      );
    out.push('\tnd6 options=201<PERFORMNUD,DAD>');
    if (!lo && !p2p) out.push('\tmedia: autoselect', `\tstatus: ${i.up ? 'active' : 'inactive'}`);
  }
  return `${out.join('\n')}\n`;
}

export function ifconfig(host: MacHost, args: string[]): ExecResult {
  const [name, ...rest] = args;
  const i = name ? host.interfaces.get(name) : undefined;
  if (!i) return fail(`ifconfig: interface ${name} does not exist\n`);
  const s = rest.join(' ');
  let m: RegExpExecArray | null;
  if ((m = /^mtu (\d+)$/.exec(s))) i.mtu = Number(m[1]);
  else if (s === 'up' || s === 'down') i.up = s === 'up';
  else if ((m = /^inet (\S+) (\S+) netmask 0x([0-9a-f]{8}) alias$/.exec(s)) && m[1] === m[2]) {
    const len = Number.parseInt(m[3]!, 16).toString(2).replace(/0+$/, '').length;
    if (!i.inet.some((a) => a.address === m![1])) i.inet.push({ address: m[1]!, prefixlen: len });
  } else if ((m = /^inet6 (\S+) prefixlen (\d+) alias$/.exec(s))) {
    if (!i.inet6.some((a) => a.address === m![1]))
      i.inet6.push({ address: m[1]!, prefixlen: Number(m[2]) });
  } else if ((m = /^inet (\S+) -alias$/.exec(s))) {
    const n = i.inet.length;
    i.inet = i.inet.filter((a) => a.address !== m![1]);
    if (i.inet.length === n)
      return fail(`ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n`);
  } else if ((m = /^inet6 (\S+) -alias$/.exec(s))) {
    const n = i.inet6.length;
    i.inet6 = i.inet6.filter((a) => a.address !== m![1]);
    if (i.inet6.length === n)
      return fail(`ifconfig: ioctl (SIOCDIFADDR_IN6): Can't assign requested address\n`);
  } else if (s === 'destroy' && name!.startsWith('utun'))
    return fail('ifconfig: SIOCIFDESTROY: Invalid argument\n');
  else throw new Error(`macos-host: ifconfig ${args.join(' ')}`);
  return ok();
}
