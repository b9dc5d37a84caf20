/**
 * May root read this file on behalf of a less-trusted API caller? Only when nobody but root
 * can decide what the path names or what the file holds, i.e. when every object the lookup
 * touches is owned by root and not writable by group or others: `/`, each directory below
 * it, each symbolic link met on the way (and every directory of the link's target), and the
 * file itself, which must be a regular file.
 *
 * The walk resolves the path itself, component by component, the way the kernel does
 * (symbolic links followed where they are met, `..` taken physically, at most 40 links), and
 * checks each object before the next lookup depends on it. So the result holds until root
 * changes something: a caller cannot swap a link or a directory between the check and the
 * daemon's read (no check-then-use race), and a link in a directory the caller controls is
 * refused even when its target is harmless today.
 *
 * ACLs, read through the platform's CallerNatives (Platform.callerNatives): an object whose
 * ACL lets someone the mode bits do not name change it is refused (macOS: extended ACLs do
 * not show in the mode; on Linux a POSIX ACL's mask is in the group bits, so the mode check
 * already covers it).
 *
 * With `reader`, the caller must also be able to read the file through the same lookup
 * (search permission on every directory, read on the file), judged from the mode bits for its
 * uid, gid and groups; an object whose ACL decides who may read it is refused, since its mode
 * bits do not say. That keeps the daemon from parsing a root-only file (its error messages
 * would quote it) for someone who could not read it.
 *
 * Pure over a small file-system view, so symlink tricks are unit-tested without root.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { AwgError } from '../errors.js';
import type { AclFacts, CallerNatives } from '../native/peercred.js';

export interface Who {
  uid: number;
  gid: number;
  groups: readonly number[];
}

export interface NodeInfo {
  kind: 'file' | 'dir' | 'symlink' | 'other';
  uid: number;
  gid: number;
  /** permission bits and file type bits as st_mode */
  mode: number;
}

/** What the walk needs of the file system (lstat-like: links are never followed). */
export interface FileView {
  /** undefined when nothing is there */
  lstat(path: string): NodeInfo | undefined;
  readlink(path: string): string;
  /** what an ACL on `path` (never followed) adds to its mode bits; undefined when nothing */
  acl(path: string): AclFacts | undefined;
}

export interface TrustOptions {
  /** the owner every object must have (default 0, root) */
  owner?: number;
  /** the caller, who must be able to read the file itself */
  reader?: Who;
  fs: FileView;
}

/** The real file system through lstat/readlink, its ACLs through the platform's `acl` (CallerNatives). */
export const realFileView = (acl: CallerNatives['acl']): FileView => ({
  lstat(path) {
    let st;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const kind = st.isSymbolicLink()
      ? 'symlink'
      : st.isDirectory()
        ? 'dir'
        : st.isFile()
          ? 'file'
          : 'other';
    return { kind, uid: st.uid, gid: st.gid, mode: st.mode };
  },
  readlink: (path) => readlinkSync(path, 'utf8'),
  acl,
});

const MAX_LINKS = 40;
const R = 4;
const X = 1;

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** The permission class (owner, group, other) of `who` on `n`, and whether it has `bit`. */
function permits(n: NodeInfo, who: Who, bit: number): boolean {
  const shift = n.uid === who.uid ? 6 : n.gid === who.gid || who.groups.includes(n.gid) ? 3 : 0;
  return ((n.mode >> shift) & bit) !== 0;
}

const join = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);
const parent = (dir: string) => (dir === '/' ? '/' : dir.slice(0, dir.lastIndexOf('/')) || '/');
const parts = (p: string) => p.split('/').filter((c) => c !== '' && c !== '.');

/**
 * Check `path` (see the file comment). Returns the physical path it names; throws a
 * `permission` AwgError naming `what`, the path and the first object that fails.
 */
export function checkTrustedPath(what: string, path: string, o: TrustOptions): string {
  const fs = o.fs;
  const owner = o.owner ?? 0;
  const fail = (why: string) =>
    new AwgError('permission', `${what} ${path} is not trusted: ${why}`, {
      hint: `a socket-group member may only use files that ${owner === 0 ? 'root' : `uid ${owner}`} owns in directories only ${owner === 0 ? 'root' : `uid ${owner}`} can write (every directory from / down); run the command as root, or move the file`,
    });
  if (!isAbsolute(path)) throw fail('not an absolute path');

  const vet = (p: string, n: NodeInfo, role: string) => {
    if (n.uid !== owner)
      throw fail(
        `${role} ${p} is owned by uid ${n.uid}, not ${owner === 0 ? 'root' : `uid ${owner}`}`,
      );
    // a link's own mode is meaningless (0777 on Linux); its directory decides who may replace it
    if (n.kind !== 'symlink' && n.mode & 0o022) {
      const by = [n.mode & 0o020 ? 'its group' : '', n.mode & 0o002 ? 'others' : '']
        .filter(Boolean)
        .join(' and ');
      throw fail(`${role} ${p} is writable by ${by} (mode ${octal(n.mode)})`);
    }
    // a link too: macOS can open a link itself (O_SYMLINK), so an ACL on it could let others rewrite it
    const acl = fs.acl(p);
    if (acl?.grantsWrite) throw fail(`${role} ${p} has ${acl.what} that lets others change it`);
    if (acl?.decidesRead && o.reader && n.kind !== 'symlink')
      throw fail(
        `${role} ${p} has ${acl.what}, so its mode does not tell whether uid ${o.reader.uid} may read it`,
      );
  };
  const enter = (dir: string) => {
    const n = fs.lstat(dir);
    if (!n || n.kind !== 'dir') throw fail(`${dir} is not a directory`);
    vet(dir, n, 'directory');
    if (o.reader && !permits(n, o.reader, X))
      throw fail(`uid ${o.reader.uid} may not search directory ${dir}`);
  };

  let dir = '/';
  enter(dir);
  const todo = parts(path);
  let links = 0;
  for (;;) {
    const name = todo.shift();
    if (name === undefined) throw fail('it names a directory, not a file');
    if (name === '..') {
      dir = parent(dir); // already entered: every ancestor of `dir` was checked on the way down
      continue;
    }
    const p = join(dir, name);
    const n = fs.lstat(p);
    if (!n) throw fail(`${p} does not exist`);
    if (n.kind === 'symlink') {
      vet(p, n, 'symbolic link');
      if (++links > MAX_LINKS) throw fail(`more than ${MAX_LINKS} symbolic links`);
      const target = fs.readlink(p);
      if (isAbsolute(target)) {
        dir = '/';
        enter(dir);
      }
      todo.unshift(...parts(target));
      continue;
    }
    if (todo.length > 0) {
      if (n.kind !== 'dir') throw fail(`${p} is not a directory`);
      enter(p);
      dir = p;
      continue;
    }
    if (n.kind === 'dir') throw fail('it names a directory, not a file');
    if (n.kind !== 'file') throw fail(`${p} is not a regular file`);
    vet(p, n, 'file');
    if (o.reader && !permits(n, o.reader, R))
      throw fail(`uid ${o.reader.uid} may not read ${p} itself`);
    return p;
  }
}
