/**
 * Whether a macOS tool's failure text says the caller lacks privileges. Pure.
 *
 * route: `route: must be root to alter routing table` (network_cmds route.c, exit 77 =
 * EX_NOPERM); pfctl: `pfctl: /dev/pf: Permission denied` (the device is root-only, so reads
 * fail too); ifconfig's ioctls: `… Operation not permitted`; networksetup:
 * `** Error: Command requires admin privileges.` (not captured; text as reported by others).
 */
const NO_PRIVILEGE =
  /must be root|Operation not permitted|Permission denied|requires admin privileges/;

export function privilegeKind(text: string): 'permission' | 'driver' {
  return NO_PRIVILEGE.test(text) ? 'permission' : 'driver';
}

/** pfctl could not open /dev/pf: the reason, else undefined */
export function pfOpenError(stderr: string): string | undefined {
  return /^pfctl: \/dev\/pf: (.+)$/m.exec(stderr)?.[1]?.trim();
}
