/** Process and cgroup helpers shared by the placement tests. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A program name of this run's own, `<base>-<6 hex digits>`. Every placer on the host sees every
 * exec (the proc connector is host-wide, a `name` rule marks every file system for the exec
 * gate), so two tests that name the same program in their rules — run side by side, or beside
 * another session's — would place each other's processes.
 */
export const runProgram = (base: string): string => `${base}-${randomBytes(3).toString('hex')}`;

/** Poll a synchronous condition every 10 ms until it yields a value (generous timeout; not a timing assertion). */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** the process's cgroup v2 path (`0::` line of /proc/PID/cgroup); undefined once it is gone */
export const cgroupOf = (pid: number): string | undefined => {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3);
  } catch {
    return undefined;
  }
};

/** Remove `<mount>/<rel>` and its children, moving leftover processes to the parent first. */
export function removeCgroupTree(mount: string, rel: string): void {
  const dir = join(mount, rel);
  if (!existsSync(dir)) return;
  for (const d of readdirSync(dir, { withFileTypes: true }))
    if (d.isDirectory()) removeCgroupTree(mount, join(rel, d.name));
  const parent = join(dir, '..', 'cgroup.procs');
  for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
    try {
      writeFileSync(parent, pid);
    } catch {
      /* exited */
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* populated: reported by the test that left it */
  }
}
