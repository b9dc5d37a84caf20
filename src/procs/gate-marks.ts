/**
 * Which file systems the exec gate marks, chosen from the rules (procs/gate.ts). Pure.
 *
 * A FAN_MARK_FILESYSTEM mark holds every exec of a file on that file system until the placer
 * answers, matched or not, so each mark has a cost (one placer round trip per exec there:
 * bench/RESULTS.md, exec gate). The marks are the fewest file systems a matching executable
 * can live on:
 * - `dir: D` → the file system mounted at the longest mount point that contains D, plus
 *   every file system mounted below D (the rule is recursive).
 * - `path: G` (a glob) → the same for the glob's literal leading directories (`/opt/*\/bin/x`
 *   → `/opt`; a glob without wildcards → its own path).
 * - `name`, `regex`, `flatpak` (a sandbox runs programs from anywhere), and any rule with
 *   `ignoreCase` (`/OPT/x` is another directory) → every file system an exec can come from.
 * - `user`, `unit`, `cgroup` and destination-only rules move no process: no marks.
 * "Can exec from": not mounted `noexec` everywhere, and not a pseudo file system that holds
 * no programs (proc, sysfs, cgroup, devpts, …). A file system mounted several times (bind
 * mounts) is marked once, by the first mount point of it that qualifies.
 * Disabled rules need no marks.
 */
import type { Rule } from '../config/schema.js';
import { placedBy } from '../model/match.js';
import { parseMountinfo as parseMounts } from '../util/mountinfo.js';

export interface MountEntry {
  /** major:minor: one per file system (super block) */
  dev: string;
  mountPoint: string;
  fsType: string;
  noexec: boolean;
}

export interface GateMark {
  /** a mount point of the file system, the path given to fanotify_mark */
  path: string;
  dev: string;
  fsType: string;
}

export interface GatePlan {
  marks: GateMark[];
  /** `trees`: only the file systems of dir/path rules; `all`: a name/regex rule needs every one */
  scope: 'none' | 'trees' | 'all';
}

/** file systems that hold no programs (an exec from them is impossible or irrelevant) */
const PSEUDO = new Set([
  'proc',
  'sysfs',
  'cgroup',
  'cgroup2',
  'devpts',
  'mqueue',
  'bpf',
  'tracefs',
  'debugfs',
  'securityfs',
  'pstore',
  'configfs',
  'fusectl',
  'hugetlbfs',
  'autofs',
  'binfmt_misc',
  'efivarfs',
  'rpc_pipefs',
  'nsfs',
  'selinuxfs',
  'devtmpfs',
]);

/** the mounts of a mountinfo text, as the marks need them (util/mountinfo.ts parses) */
export function parseMountinfo(text: string): MountEntry[] {
  return parseMounts(text).map((m) => ({
    dev: m.dev,
    mountPoint: m.mountPoint,
    fsType: m.fsType,
    noexec: m.options.includes('noexec'),
  }));
}

const GLOB_CHARS = /[*?[\]{}!+@()]/;

/** the literal directory a rule's matches all lie below, or undefined when it could be anywhere */
export function ruleTree(r: Rule): string | undefined {
  const m = r.match;
  // (rules that place no program are left out by planGateMarks)
  if (m === undefined || !('ignoreCase' in m) || m.ignoreCase) return undefined;
  if ('dir' in m) return normalize(m.dir);
  if ('path' in m) {
    const segs = m.path.split('/');
    const i = segs.findIndex((s) => GLOB_CHARS.test(s) || s === '..' || s === '.');
    return normalize(i < 0 ? m.path : segs.slice(0, i).join('/') || '/');
  }
  return undefined;
}

function normalize(p: string): string {
  const s = `/${p
    .split('/')
    .filter((x) => x !== '')
    .join('/')}`;
  return s;
}

const below = (p: string, dir: string) => dir === '/' || p === dir || p.startsWith(`${dir}/`);

export function planGateMarks(rules: readonly Rule[], mounts: readonly MountEntry[]): GatePlan {
  // only rules whose processes the placer moves need the gate: not destination-only rules,
  // nor user/unit/cgroup rules (the firewall matches those where they are)
  const enabled = rules.filter(
    (r) => r.enabled !== false && r.match !== undefined && placedBy(r.match) !== 'nft',
  );
  if (enabled.length === 0) return { marks: [], scope: 'none' };
  const usable = mounts.filter((m) => !PSEUDO.has(m.fsType) && !m.noexec);
  const trees = enabled.map(ruleTree);
  const picked: MountEntry[] = [];
  if (trees.some((t) => t === undefined)) picked.push(...usable);
  else
    for (const t of trees as string[]) {
      // the mount holding t: the longest mount point above it (any mount, noexec ones too)
      let holder: MountEntry | undefined;
      for (const m of mounts)
        if (below(t, m.mountPoint) && (!holder || m.mountPoint.length >= holder.mountPoint.length))
          holder = m;
      if (holder && usable.includes(holder)) picked.push(holder);
      for (const m of usable) if (m.mountPoint !== t && below(m.mountPoint, t)) picked.push(m);
    }
  const seen = new Set<string>();
  const marks: GateMark[] = [];
  for (const m of picked) {
    if (seen.has(m.dev)) continue;
    seen.add(m.dev);
    marks.push({ path: m.mountPoint, dev: m.dev, fsType: m.fsType });
  }
  return { marks, scope: trees.some((t) => t === undefined) ? 'all' : 'trees' };
}
