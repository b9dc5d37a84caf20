/**
 * NetworkManager and awg's links. NM takes every link it sees as its own to configure unless
 * told otherwise: without udev properties it shows our TUN as `connected (externally)`, and on
 * its next change of that "connection" it rewrites the link's DNS in systemd-resolved, wiping
 * the per-link servers awg set there (the failure mullvad/mullvadvpn-app#2486 describes).
 *
 * The remedy is NM's own: a keyfile drop-in listing our links as unmanaged. NM reads its
 * conf.d at start and on `nmcli general reload conf`, before a link of that name appears, so
 * it never touches one; nothing of NM's runtime state is changed by awg. The Debian package
 * ships it in /usr/lib/NetworkManager/conf.d (parsed first of all NM's files); `awg service
 * install` writes it to /etc/NetworkManager/conf.d for an npm install and `awg service
 * uninstall` removes it. `+=` appends to a list another file set instead of replacing it (a
 * later plain `unmanaged-devices=` in NetworkManager.conf still replaces ours: `awg doctor`
 * names a link of ours NM manages).
 *
 * Not done: `nmcli device set <link> managed no` at run time for links under another prefix
 * (the claims' linkPrefix is the constant `awg-` today; a record of an older awg may name
 * another). It would need D-Bus and NM in the reconcile path (a run failing or waiting
 * because NM is down), it races NM's first look at a new link, and NM forgets it on its
 * restart. `awg doctor` checks NM's effective configuration against the prefix instead and
 * says which line to add.
 */
import { LINK_PREFIX } from '../../config/schema.js';
import { IFB_PREFIX } from '../../model/shaping.js';

/** NM's matching of device specs against a link name (pure, model/doctor.ts) */
export { nmUnmanages } from '../../model/doctor.js';

export const NM_DROPIN_NAME = 'awg-unmanaged.conf';
/** where the Debian package puts it (a package's place, shadowed by a same-named file in /etc) */
export const NM_DROPIN_PACKAGE_DIR = '/usr/lib/NetworkManager/conf.d';
/** where `awg service install` writes it */
export const NM_DROPIN_ETC_DIR = '/etc/NetworkManager/conf.d';

/** NM's device spec for every link whose name starts with `prefix` */
export function nmInterfaceSpec(prefix: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix))
    throw new Error(`link prefix ${JSON.stringify(prefix)} cannot be written as an NM device spec`);
  return `interface-name:${prefix}*`;
}

/** The drop-in: every link with one of `prefixes` unmanaged (default: awg's TUNs and the ifbs of limits). */
export function renderNmDropin(prefixes: readonly string[] = [LINK_PREFIX, IFB_PREFIX]): string {
  return [
    '# Written by awg: NetworkManager leaves the links awg creates alone (tunnels, limit ifbs),',
    "# so it never rewrites their addresses or their DNS in systemd-resolved. Read at NM's start",
    '# and on `nmcli general reload conf`; `+=` keeps what other files list.',
    '[keyfile]',
    `unmanaged-devices+=${prefixes.map(nmInterfaceSpec).join(';')}`,
    '',
  ].join('\n');
}
