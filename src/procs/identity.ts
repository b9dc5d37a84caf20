/**
 * What compiling identity rules needs on this host (model/match.ts IdentityLookup): user names
 * → uids and units → cgroups, from the daemon's probed facts when it sent them, else read
 * here (/etc/passwd, once; a unit's default cgroup `/system.slice/<unit>`).
 */
import { readFileSync } from 'node:fs';
import type { IdentityLookup } from '../model/match.js';
import { parsePasswd, type IdentityFacts } from '../model/who.js';

export function linuxIdentityLookup(
  facts: IdentityFacts = {},
  passwd: () => string = () => readFileSync('/etc/passwd', 'utf8'),
): IdentityLookup {
  let users: Record<string, number> | undefined;
  return {
    uidOf(name) {
      if (facts.users && Object.hasOwn(facts.users, name)) return facts.users[name];
      if (users === undefined) {
        try {
          users = parsePasswd(passwd());
        } catch {
          users = {};
        }
      }
      return Object.hasOwn(users, name) ? users[name] : undefined;
    },
    unitCgroup: (unit) =>
      facts.unitCgroups && Object.hasOwn(facts.unitCgroups, unit)
        ? facts.unitCgroups[unit]
        : undefined,
  };
}
