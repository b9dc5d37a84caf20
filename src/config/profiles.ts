/**
 * Obfuscation profiles (`tunnels.<name>.profiles`): the obfuscation a profile gives (the
 * base `obfuscation:` with the profile's fields on top), which profile is active, and the
 * config as the engines run it (each tunnel's `obfuscation` replaced by its active profile's).
 * Pure.
 */
import { SERVER_SIDE_KEYS, type AwgObfuscation, type AwgProfile } from './schema-obfuscation.js';
import type { Config } from './schema.js';

/** the profile's own obfuscation fields (without `name` and `server`), those it sets */
export function profileFields(p: AwgProfile): AwgObfuscation {
  const { name: _n, server: _s, ...rest } = p;
  return Object.fromEntries(
    Object.entries(rest).filter(([, v]) => v !== undefined),
  ) as AwgObfuscation;
}

/** the obfuscation the profile runs with: the base, each field the profile sets replaced */
export function profileObfuscation(base: AwgObfuscation, p: AwgProfile): AwgObfuscation {
  return { ...base, ...profileFields(p) };
}

/**
 * The server-side keys (SERVER_SIDE_KEYS) whose value the profile changes from the base's
 * (a profile repeating the base's value changes nothing).
 */
export function serverSideChanges(base: AwgObfuscation, p: AwgProfile): string[] {
  const own = profileFields(p);
  return SERVER_SIDE_KEYS.filter(
    (k) => own[k] !== undefined && JSON.stringify(own[k]) !== JSON.stringify(base[k]),
  );
}

/** the active profile's name: `wanted` when the tunnel has it, else the first; none without profiles */
export function activeProfile(
  profiles: readonly AwgProfile[] | undefined,
  wanted: string | undefined,
): AwgProfile | undefined {
  if (!profiles?.length) return undefined;
  return profiles.find((p) => p.name === wanted) ?? profiles[0];
}

/**
 * The config with each amneziawg tunnel's `obfuscation` replaced by its active profile's
 * (`active`: tunnel → profile name, the daemon's choice; absent or unknown: the first profile).
 * The same object when no tunnel has profiles.
 */
export function withActiveProfiles(c: Config, active?: ReadonlyMap<string, string>): Config {
  let tunnels: Config['tunnels'] | undefined;
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (t.type !== 'amneziawg') continue;
    const p = activeProfile(t.profiles, active?.get(name));
    if (!p) continue;
    tunnels ??= { ...c.tunnels };
    tunnels[name] = { ...t, obfuscation: profileObfuscation(t.obfuscation, p) };
  }
  return tunnels ? { ...c, tunnels } : c;
}

/** the obfuscation `awg apply` runs (and exports write): the first profile's, else the base */
export function firstObfuscation(t: {
  obfuscation?: AwgObfuscation | undefined;
  profiles?: readonly AwgProfile[] | undefined;
}): AwgObfuscation {
  const base = t.obfuscation ?? {};
  return t.profiles?.[0] ? profileObfuscation(base, t.profiles[0]) : base;
}
