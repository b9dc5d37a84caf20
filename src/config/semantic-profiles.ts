/**
 * Checks of `tunnels.<name>.profiles` (config/profiles.ts): unique names, no header
 * protection key of their own, no change of a server-side parameter without `server: true`,
 * and each profile's obfuscation (the base with its fields on top) checked like
 * `obfuscation:` itself, the sizes of its datagrams too (mtu.ts checkMtu: an S4 a `server:
 * true` profile raises must still fit the link). Pure.
 */
import { checkMtu, type SizedTunnel } from './mtu.js';
import { profileFields, profileObfuscation, serverSideChanges } from './profiles.js';
import type { PathKey } from './positions.js';
import type { AwgObfuscation, AwgProfile } from './schema-obfuscation.js';

/** semantic.ts's Finding (not imported: semantic.ts imports this module) */
interface Finding {
  path: PathKey[];
  message: string;
  severity: 'error' | 'warning';
}

export type ObfuscationCheck = (o: AwgObfuscation, base: PathKey[], out: Finding[]) => void;

export function checkProfiles(
  base: AwgObfuscation,
  profiles: readonly AwgProfile[],
  at: PathKey[],
  check: ObfuscationCheck,
  out: Finding[],
): void {
  const err = (path: PathKey[], message: string) =>
    out.push({ path: [...at, ...path], message, severity: 'error' });
  const baseFindings: Finding[] = [];
  check(base, [], baseFindings);
  const seen = new Map<string, number>();
  profiles.forEach((p, i) => {
    const prev = seen.get(p.name);
    if (prev !== undefined)
      err([i, 'name'], `profile "${p.name}" is also profiles[${prev}]; names must be unique`);
    else seen.set(p.name, i);
    if (p.headerProtectionKey !== undefined)
      err(
        [i, 'headerProtectionKey'],
        'a profile cannot set headerProtectionKey: the key is a secret of the tunnel (obfuscation.headerProtectionKey), shared by every profile',
      );
    const changed = serverSideChanges(base, p).filter((k) => k !== 'headerProtectionKey');
    if (changed.length && p.server !== true)
      for (const k of changed)
        err(
          [i, k],
          `${k} is a server-side parameter (the receiver checks it): profile "${p.name}" changes it from the base obfuscation, so it only works against a server configured the same way; add \`server: true\` to the profile if that server exists, or leave ${k} to the base`,
        );
    // the profile's obfuscation as a whole: its own keys located in it; the base's alone are
    // the base's findings (reported at obfuscation:), others located at the profile
    const own = profileFields(p);
    const found: Finding[] = [];
    check(profileObfuscation(base, p), [], found);
    for (const f of found) {
      const k = f.path[0];
      if (typeof k === 'string' && !(k in own)) {
        if (baseFindings.some((b) => b.message === f.message)) continue;
        err([i], `with the base's ${k}: ${f.message}`);
      } else err([i, ...f.path], f.message);
    }
  });
}

/**
 * The MTU checks of `obfuscation:` (mtu.ts checkMtu) for the tunnel as each profile runs it:
 * a datagram the base does not already make too large for the path is a warning at the
 * profile's field that sets its size (an S4 that no longer fits the tunnel's `mtu`, or whose
 * default MTU stops at 1280, at the profile's `s4`).
 */
export function checkProfileMtu(
  t: SizedTunnel & { obfuscation: AwgObfuscation },
  profiles: readonly AwgProfile[],
  at: PathKey[],
  out: Finding[],
): void {
  const known = new Set(checkMtu(t, []).map((w) => w.message));
  profiles.forEach((p, i) => {
    const own = profileFields(p);
    for (const w of checkMtu({ ...t, obfuscation: profileObfuscation(t.obfuscation, p) }, [])) {
      if (known.has(w.message)) continue;
      // ['mtu'] or ['obfuscation', field]: the profile cannot set `mtu`; its S4 decides
      const field = w.path[0] === 'mtu' ? 's4' : w.path[1];
      const path = typeof field === 'string' && field in own ? [i, field] : [i];
      out.push({
        path: [...at, ...path],
        message: `profile "${p.name}": ${w.message}`,
        severity: 'warning',
      });
    }
  });
}
