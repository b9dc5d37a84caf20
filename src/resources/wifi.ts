/**
 * Linux: the Wi-Fi network (SSID) the default route's interface is associated with, part of
 * a network's identity (daemon/profile-switch.ts NetworkId): `iw dev <iface> link`, asked only
 * of an interface the kernel calls wireless (/sys/class/net/<iface>/wireless) and only when
 * `iw` is installed; otherwise nothing. The SSID comes from the air, so anyone nearby chooses
 * its bytes: `iw` prints it escaped (`\xNN` for anything but printable ASCII), and the parser
 * takes only printable ASCII of at most 32 escaped bytes' length, else nothing.
 */
import { existsSync } from 'node:fs';
import type { Exec } from '../util/exec.js';

/** an SSID is at most 32 bytes; escaped as `\xNN`, at most 4 characters each */
const MAX_ESCAPED = 32 * 4;

/** the SSID in `iw dev <iface> link`'s text; undefined when not connected or not readable */
export function ssidOfIwLink(text: string): string | undefined {
  if (!/^Connected to /m.test(text)) return undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*SSID: (.*)$/.exec(line);
    if (!m) continue;
    const ssid = m[1]!;
    // printable ASCII only (iw escapes the rest); an empty or oversized one is no identity
    if (ssid.length === 0 || ssid.length > MAX_ESCAPED || !/^[\x20-\x7e]+$/.test(ssid))
      return undefined;
    return ssid;
  }
  return undefined;
}

/** an interface name as the kernel allows it (no path separators, at most 15 bytes) */
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/** The SSID `iface` is associated with; undefined when it is not wireless, `iw` is missing or fails. */
export async function linuxWifiSsid(
  exec: Pick<Exec, 'read'>,
  iface: string,
  wireless: (iface: string) => boolean = (i) => existsSync(`/sys/class/net/${i}/wireless`),
): Promise<string | undefined> {
  if (!IFNAME.test(iface) || iface === '.' || iface === '..' || !wireless(iface)) return undefined;
  try {
    const r = await exec.read('iw', ['dev', iface, 'link'], { allowFail: true });
    return r.code === 0 ? ssidOfIwLink(r.stdout) : undefined;
  } catch {
    // no `iw` on this host
    return undefined;
  }
}
