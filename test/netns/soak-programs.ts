/**
 * The soak's matched programs (soak-support.ts) and the rules that match them, named per run.
 *
 * Every placer on the host sees every exec: the proc connector is host-wide (the daemon under
 * test is handed a socket opened in the initial namespace) and a `name` rule marks every file
 * system for the exec gate. Two soaks running at once with the same program names (one CI
 * run's soak beside another session's smoke) therefore each placed the other's programs into
 * their own rule's cgroup, and whichever gate answered last won: 1,233 of 12,036 checks
 * failed in one run, 22 of 628 in the other, all during the 32 s the two overlapped. A name
 * of its own per run (its cgroup root's id: unique among the runs of the host) keeps each
 * soak's rules to its own programs.
 */

export interface SoakPrograms {
  /** matched in every config: its placement is checked */
  a: string;
  /** matched only while the toggled rule `extra` exists */
  b: string;
}

/** the names of one run's programs; `cgroupRoot` is the run's (`awgt-<id>`) */
export function soakPrograms(cgroupRoot: string): SoakPrograms {
  const id = cgroupRoot.replace(/^awgt-/, '');
  if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`soak: unexpected cgroup root ${cgroupRoot}`);
  return { a: `awgt-soak-a-${id}`, b: `awgt-soak-b-${id}` };
}

/** the `rules:` entries of a config variant: `apps` matches `a`, `extra` (when on) matches `b` */
export function soakRules(p: SoakPrograms, v: { appsTarget: string; extra: boolean }): string {
  const apps = `  - name: apps\n    match: { name: ${p.a} }\n    target: ${v.appsTarget}\n`;
  const extra = v.extra ? `  - name: extra\n    match: { name: ${p.b} }\n    target: vpn\n` : '';
  return apps + extra;
}
