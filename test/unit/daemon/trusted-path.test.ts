/**
 * checkTrustedPath over an in-memory file system: which lookups a socket-group caller may
 * make root perform. Every refusal case is paired with the same tree minus the one flaw
 * (the control), so each assertion can fail.
 */
import { describe, expect, it } from 'vitest';
import {
  checkTrustedPath,
  type FileView,
  type NodeInfo,
  type Who,
} from '../../../src/daemon/trusted-path.js';
import type { AclFacts } from '../../../src/native/peercred.js';

/** acl: true is a POSIX ACL as Linux reports it (Platform.callerNatives) */
type Entry = (Partial<NodeInfo> & { kind: NodeInfo['kind'] }) & {
  target?: string;
  acl?: true | AclFacts;
};

/** A tree of absolute paths; parents are not implied (list them). Records every lstat. */
function fakeFs(entries: Record<string, Entry>): FileView & { seen: string[] } {
  const seen: string[] = [];
  const get = (p: string) => entries[p];
  return {
    seen,
    lstat(p) {
      seen.push(p);
      const e = get(p);
      if (!e) return undefined;
      const type = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0o010000 }[e.kind];
      const perm = e.mode ?? (e.kind === 'dir' ? 0o755 : e.kind === 'symlink' ? 0o777 : 0o644);
      return { kind: e.kind, uid: e.uid ?? 0, gid: e.gid ?? 0, mode: type | perm };
    },
    readlink(p) {
      const e = get(p);
      if (e?.kind !== 'symlink' || e.target === undefined) throw new Error(`EINVAL readlink ${p}`);
      return e.target;
    },
    acl: (p) => {
      const a = get(p)?.acl;
      return a === true ? { what: 'a POSIX ACL', grantsWrite: false, decidesRead: true } : a;
    },
  };
}

const dir = (o: Partial<Entry> = {}): Entry => ({ kind: 'dir', ...o });
const file = (o: Partial<Entry> = {}): Entry => ({ kind: 'file', ...o });
const link = (target: string, o: Partial<Entry> = {}): Entry => ({ kind: 'symlink', target, ...o });

const ETC = { '/': dir(), '/etc': dir(), '/etc/awg': dir() };
const ALICE: Who = { uid: 1000, gid: 1000, groups: [998] };

const ok = (path: string, fs: FileView, reader?: Who) =>
  checkTrustedPath('config', path, { fs, ...(reader ? { reader } : {}) });
const refused = (path: string, fs: FileView, reader?: Who) => {
  try {
    ok(path, fs, reader);
  } catch (e) {
    expect(e).toMatchObject({ kind: 'permission' });
    return (e as Error).message;
  }
  throw new Error(`${path} was accepted`);
};

describe('checkTrustedPath: ownership and modes along the whole path', () => {
  it('a root-owned file in root-owned 0755 directories passes and comes back as its physical path', () => {
    expect(ok('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file() }))).toBe(
      '/etc/awg/awg.yaml',
    );
    expect(ok('/etc//awg/./awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file() }))).toBe(
      '/etc/awg/awg.yaml',
    );
  });

  it('a group-writable parent directory is refused, naming it (control: 0755 passes above)', () => {
    const m = refused(
      '/etc/awg/awg.yaml',
      fakeFs({ ...ETC, '/etc/awg': dir({ mode: 0o775, gid: 998 }), '/etc/awg/awg.yaml': file() }),
    );
    expect(m).toBe(
      'config /etc/awg/awg.yaml is not trusted: directory /etc/awg is writable by its group (mode 0775)',
    );
  });

  it('an other-writable directory anywhere up the path, / included, is refused', () => {
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc': dir({ mode: 0o757 }), '/etc/awg/awg.yaml': file() }),
      ),
    ).toContain('directory /etc is writable by others');
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/': dir({ mode: 0o777 }), '/etc/awg/awg.yaml': file() }),
      ),
    ).toContain('directory / is writable by its group and others (mode 0777)');
  });

  it('a sticky world-writable directory (/tmp) is refused too: anyone may create names in it', () => {
    expect(
      refused(
        '/tmp/awg.yaml',
        fakeFs({ '/': dir(), '/tmp': dir({ mode: 0o1777 }), '/tmp/awg.yaml': file() }),
      ),
    ).toContain('directory /tmp is writable by its group and others (mode 1777)');
  });

  it('a directory or file owned by another user is refused', () => {
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc/awg': dir({ uid: 1000 }), '/etc/awg/awg.yaml': file() }),
      ),
    ).toContain('directory /etc/awg is owned by uid 1000, not root');
    expect(
      refused('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ uid: 1000 }) })),
    ).toContain('file /etc/awg/awg.yaml is owned by uid 1000, not root');
  });

  it('a group- or other-writable file is refused', () => {
    expect(
      refused('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ mode: 0o664 }) })),
    ).toContain('writable by its group (mode 0664)');
    expect(
      refused('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ mode: 0o646 }) })),
    ).toContain('writable by others (mode 0646)');
  });

  it('only regular files: a FIFO or device, a directory, a missing file, a relative path are refused', () => {
    expect(
      refused('/etc/awg/fifo', fakeFs({ ...ETC, '/etc/awg/fifo': { kind: 'other' } })),
    ).toContain('/etc/awg/fifo is not a regular file');
    expect(refused('/etc/awg', fakeFs({ ...ETC }))).toContain('names a directory');
    expect(refused('/etc/awg/none.yaml', fakeFs({ ...ETC }))).toContain(
      '/etc/awg/none.yaml does not exist',
    );
    expect(refused('awg.yaml', fakeFs({ ...ETC }))).toContain('not an absolute path');
    expect(
      refused('/etc/awg/awg.yaml/x', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file() })),
    ).toContain('/etc/awg/awg.yaml is not a directory');
  });
});

describe('checkTrustedPath: symbolic links are resolved first, then every component is checked', () => {
  it('a link in a trusted directory to a trusted file passes; the physical path comes back', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/awg.yaml': link('profiles/home.yaml'),
      '/etc/awg/profiles': dir(),
      '/etc/awg/profiles/home.yaml': file(),
    });
    expect(ok('/etc/awg/awg.yaml', fs)).toBe('/etc/awg/profiles/home.yaml');
  });

  it('a link in a directory the caller owns is refused even though its target is root-owned today (it could be swapped after the check)', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/awg.yaml': file(),
      '/home': dir(),
      '/home/alice': dir({ uid: 1000, mode: 0o700 }),
      '/home/alice/cfg.yaml': link('/etc/awg/awg.yaml'),
    });
    expect(refused('/home/alice/cfg.yaml', fs)).toContain(
      'directory /home/alice is owned by uid 1000',
    );
    // control: the target itself passes
    expect(ok('/etc/awg/awg.yaml', fs)).toBe('/etc/awg/awg.yaml');
  });

  it('a root-owned link in a trusted directory pointing into a user directory is refused at that directory', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/awg.yaml': link('/home/alice/awg.yaml'),
      '/home': dir(),
      '/home/alice': dir({ uid: 1000 }),
      '/home/alice/awg.yaml': file(),
    });
    expect(refused('/etc/awg/awg.yaml', fs)).toContain(
      'directory /home/alice is owned by uid 1000',
    );
  });

  it('a link to a root-owned file inside a group-writable directory is refused (realpath alone would look fine)', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/key': link('/srv/keys/wg.key'),
      '/srv': dir(),
      '/srv/keys': dir({ mode: 0o770, gid: 998 }),
      '/srv/keys/wg.key': file({ mode: 0o600 }),
    });
    expect(refused('/etc/awg/key', fs)).toContain('directory /srv/keys is writable by its group');
  });

  it('`..` after a link is physical, as the kernel takes it: /etc/awg/d/../x is not /etc/awg/x', () => {
    const tree = {
      ...ETC,
      '/etc/awg/x.yaml': file(),
      '/etc/awg/d': link('/home/alice/sub'),
      '/home': dir(),
      '/home/alice': dir({ uid: 1000 }),
      '/home/alice/sub': dir({ uid: 1000 }),
      '/home/alice/x.yaml': file({ uid: 1000 }),
    };
    expect(refused('/etc/awg/d/../x.yaml', fakeFs(tree))).toContain(
      'directory /home/alice is owned by uid 1000',
    );
    // control: a plain `..` stays inside trusted directories
    expect(ok('/etc/awg/../awg/x.yaml', fakeFs(tree))).toBe('/etc/awg/x.yaml');
  });

  it('relative links resolve against the link’s directory; chains are followed', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/a': link('b'),
      '/etc/awg/b': link('../awg/c'),
      '/etc/awg/c': file(),
    });
    expect(ok('/etc/awg/a', fs)).toBe('/etc/awg/c');
  });

  it('a link owned by another user is refused even in a trusted directory', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/awg.yaml': link('real.yaml', { uid: 1000 }),
      '/etc/awg/real.yaml': file(),
    });
    expect(refused('/etc/awg/awg.yaml', fs)).toContain(
      'symbolic link /etc/awg/awg.yaml is owned by uid 1000',
    );
  });

  it('a link loop ends with a refusal, not a hang', () => {
    const fs = fakeFs({ ...ETC, '/etc/awg/a': link('b'), '/etc/awg/b': link('a') });
    expect(refused('/etc/awg/a', fs)).toContain('more than 40 symbolic links');
  });
});

describe('checkTrustedPath with a reader: the caller must be able to read the file itself', () => {
  it('a world-readable root file passes; a root-only 0600 file is refused (no parsing /etc/shadow for anyone)', () => {
    expect(
      ok(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ mode: 0o644 }) }),
        ALICE,
      ),
    ).toBe('/etc/awg/awg.yaml');
    expect(
      refused(
        '/etc/shadow',
        fakeFs({ '/': dir(), '/etc': dir(), '/etc/shadow': file({ mode: 0o640, gid: 42 }) }),
        ALICE,
      ),
    ).toContain('uid 1000 may not read /etc/shadow itself');
  });

  it('group read counts through the primary gid or a supplementary group', () => {
    const fs = fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ mode: 0o640, gid: 998 }) });
    expect(ok('/etc/awg/awg.yaml', fs, ALICE)).toBe('/etc/awg/awg.yaml');
    expect(ok('/etc/awg/awg.yaml', fs, { uid: 1001, gid: 998, groups: [] })).toBe(
      '/etc/awg/awg.yaml',
    );
    expect(refused('/etc/awg/awg.yaml', fs, { uid: 1002, gid: 1002, groups: [5] })).toContain(
      'may not read',
    );
  });

  it('a directory the caller may not search stops the walk before anything inside it is looked up (no existence oracle)', () => {
    const fs = fakeFs({
      '/': dir(),
      '/root': dir({ mode: 0o700 }),
      '/root/secret.yaml': file({ mode: 0o644 }),
    });
    expect(refused('/root/secret.yaml', fs, ALICE)).toContain(
      'uid 1000 may not search directory /root',
    );
    expect(fs.seen).not.toContain('/root/secret.yaml');
    // without a reader (a secret file named by a root-owned config) the same path passes
    expect(
      ok(
        '/root/secret.yaml',
        fakeFs({
          '/': dir(),
          '/root': dir({ mode: 0o700 }),
          '/root/secret.yaml': file({ mode: 0o600 }),
        }),
      ),
    ).toBe('/root/secret.yaml');
  });

  it('a POSIX ACL on the file or a directory is refused for a reader (mode bits do not tell), ignored without one', () => {
    const tree = { ...ETC, '/etc/awg/awg.yaml': file({ acl: true }) };
    expect(refused('/etc/awg/awg.yaml', fakeFs(tree), ALICE)).toContain('has a POSIX ACL');
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc/awg': dir({ acl: true }), '/etc/awg/awg.yaml': file() }),
        ALICE,
      ),
    ).toContain('directory /etc/awg has a POSIX ACL');
    expect(ok('/etc/awg/awg.yaml', fakeFs(tree))).toBe('/etc/awg/awg.yaml');
  });

  it('an ACL that lets others write (macOS: not shown in the mode) is refused with or without a reader, on a file, a directory or a link', () => {
    const w: AclFacts = { what: 'an extended ACL (ls -le)', grantsWrite: true, decidesRead: false };
    expect(
      refused('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ acl: w }) })),
    ).toBe(
      'config /etc/awg/awg.yaml is not trusted: file /etc/awg/awg.yaml has an extended ACL (ls -le) that lets others change it',
    );
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc': dir({ acl: w }), '/etc/awg/awg.yaml': file() }),
        ALICE,
      ),
    ).toContain('directory /etc has an extended ACL (ls -le) that lets others change it');
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({
          ...ETC,
          '/etc/awg/awg.yaml': link('real.yaml', { acl: w }),
          '/etc/awg/real.yaml': file(),
        }),
      ),
    ).toContain('symbolic link /etc/awg/awg.yaml has an extended ACL');
    // one that only decides who may read matters only for a reader; one that adds nothing never
    const r: AclFacts = { ...w, grantsWrite: false, decidesRead: true };
    expect(ok('/etc/awg/awg.yaml', fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ acl: r }) }))).toBe(
      '/etc/awg/awg.yaml',
    );
    expect(
      refused(
        '/etc/awg/awg.yaml',
        fakeFs({ ...ETC, '/etc/awg/awg.yaml': file({ acl: r }) }),
        ALICE,
      ),
    ).toContain('so its mode does not tell whether uid 1000 may read it');
    expect(
      ok(
        '/etc/awg/awg.yaml',
        fakeFs({
          ...ETC,
          '/etc/awg/awg.yaml': link('real.yaml', { acl: r }),
          '/etc/awg/real.yaml': file(),
        }),
        ALICE,
      ),
    ).toBe('/etc/awg/real.yaml');
  });

  it('the reader’s access is judged through the links it follows', () => {
    const fs = fakeFs({
      ...ETC,
      '/etc/awg/awg.yaml': link('/etc/private/awg.yaml'),
      '/etc/private': dir({ mode: 0o700 }),
      '/etc/private/awg.yaml': file(),
    });
    expect(refused('/etc/awg/awg.yaml', fs, ALICE)).toContain(
      'may not search directory /etc/private',
    );
  });
});
