/**
 * Linux cgroup v2 driver: the subtree `<claims.cgroupRoot>/` (default `awg/`) below the v2
 * mount. Everything in that subtree is ours (the claimed name is the marker; cgroupfs has no
 * other). Observe reports every directory of the subtree, the root included (so the model must
 * emit `cgroup/<root>` too), each depending on its parent so deletes run children first, and
 * the inode of each as facts (`facts.cgroup`, CgroupFacts). Delete removes only a directory
 * without child cgroups (else a retryable driver error): processes still inside are moved to
 * the parent first (one pid per write; the kernel rejects lists).
 */
import { mkdir, readFile, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { ApplyContext, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { isOwnedPath, parseCgroup2Mount, type CgroupFacts, type CgroupMount } from './parse.js';

export interface LinuxCgroupOptions {
  /** default /proc/self/mountinfo */
  mountinfoPath?: string;
  /** skip detection (tests) */
  mount?: CgroupMount;
}

function fsError(e: unknown, what: string): AwgError {
  const code = (e as NodeJS.ErrnoException).code;
  return new AwgError(
    code === 'EACCES' || code === 'EPERM' ? 'permission' : 'driver',
    `${what}: ${(e as Error).message}`,
    { cause: e },
  );
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** directories of the subtree, parents before children */
async function walk(base: string, rel: string): Promise<string[]> {
  const out = [rel];
  const entries = await readdir(join(base, rel), { withFileTypes: true }).catch(() => []);
  for (const e of entries.filter((x) => x.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1)))
    out.push(...(await walk(base, `${rel}/${e.name}`)));
  return out;
}

async function pidsOf(dir: string): Promise<string[]> {
  const t = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return t.split('\n').filter((l) => /^\d+$/.test(l));
}

export function createLinuxCgroupDriver(opts: LinuxCgroupOptions = {}) {
  async function mountOf(): Promise<CgroupMount> {
    if (opts.mount) return opts.mount;
    const text = await readFile(opts.mountinfoPath ?? '/proc/self/mountinfo', 'utf8').catch(
      (e: unknown) => {
        throw fsError(e, 'cannot read mountinfo');
      },
    );
    const m = parseCgroup2Mount(text);
    if (!m)
      throw new AwgError(
        'unsupported',
        'no cgroup v2 hierarchy is mounted; per-app routing needs cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified)',
      );
    return m;
  }

  function checkPath(path: string, ctx: { claims: { cgroupRoot: string } }): void {
    if (!isOwnedPath(path, ctx.claims.cgroupRoot))
      throw new AwgError(
        'bug',
        `cgroup ${path} is outside the claimed subtree ${ctx.claims.cgroupRoot}/`,
      );
  }

  /** rmdir of a leaf cgroup; processes inside move to the parent first */
  async function remove(mount: CgroupMount, path: string, ctx: ApplyContext): Promise<void> {
    const dir = join(mount.mountPoint, path);
    const procs = join(dir, '..', 'cgroup.procs');
    // a dry run removed none of the children its plan deletes first: they are still there
    const children = ctx.exec.dryRun ? [] : (await walk(mount.mountPoint, path)).slice(1);
    if (children.length) {
      throw new AwgError(
        'driver',
        `cgroup ${path} still has child cgroups (${children.join(', ')}); delete those first`,
      );
    }
    // a process may fork into the directory between the move and rmdir (EBUSY): retry
    for (let attempt = 0; ; attempt++) {
      for (const pid of await pidsOf(dir)) {
        if (!ctx.exec.record(`echo ${pid} > ${procs}`)) continue;
        await writeFile(procs, pid).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH')
            throw fsError(e, `cannot move pid ${pid} out of ${dir}`);
        });
      }
      if (!ctx.exec.record(`rmdir ${dir}`)) return;
      try {
        await rmdir(dir);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY' || attempt >= 5) throw fsError(e, `cannot remove cgroup ${dir}`);
      }
    }
  }

  const driver: Driver<'cgroup'> & { mount(): Promise<CgroupMount> } = {
    kind: 'cgroup',
    mount: mountOf,
    async observe(scope: ObserveScope): Promise<ObserveResult<'cgroup'>> {
      const mount = await mountOf();
      const root = scope.claims.cgroupRoot;
      const resources: Resource<'cgroup'>[] = [];
      const facts: CgroupFacts = { mount, inodes: {} };
      if (await exists(join(mount.mountPoint, root))) {
        for (const path of await walk(mount.mountPoint, root)) {
          const st = await stat(join(mount.mountPoint, path)).catch(() => undefined);
          if (!st) continue;
          facts.inodes[path] = st.ino;
          const deps = path === root ? [] : [ids.cgroup(path.slice(0, path.lastIndexOf('/')))];
          resources.push({ kind: 'cgroup', id: ids.cgroup(path), spec: { path }, deps });
        }
      }
      return { resources, foreign: [], facts: { cgroup: facts } };
    },

    async apply(change: Change<'cgroup'>, ctx) {
      if (change.action === 'noop') return 'unchanged';
      const mount = await mountOf();
      let changed = false;
      if (
        change.action === 'delete' ||
        (change.action === 'replace' && change.before && change.before.path !== change.after?.path)
      ) {
        const path = change.before?.path;
        if (path === undefined) throw new AwgError('bug', `delete ${change.id} without before`);
        checkPath(path, ctx);
        if (await exists(join(mount.mountPoint, path))) {
          await remove(mount, path, ctx);
          changed = true;
        }
        if (change.action === 'delete') return changed ? 'changed' : 'unchanged';
      }
      const path = change.after?.path;
      if (path === undefined)
        throw new AwgError('bug', `${change.action} ${change.id} without after`);
      checkPath(path, ctx);
      const segs = path.split('/');
      for (let i = 1; i <= segs.length; i++) {
        const dir = join(mount.mountPoint, ...segs.slice(0, i));
        if (await exists(dir)) continue;
        changed = true;
        if (ctx.exec.record(`mkdir ${dir}`)) {
          await mkdir(dir).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
              throw fsError(e, `cannot create cgroup ${dir}`);
          });
        }
      }
      return changed ? 'changed' : 'unchanged';
    },
  };
  return driver;
}
