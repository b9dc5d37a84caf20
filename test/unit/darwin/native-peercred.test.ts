/**
 * The daemon API's caller check on macOS (src/native/darwin/peercred.ts) without a Mac: the
 * struct xucred of LOCAL_PEERCRED and the pid_t of LOCAL_PEERPID, and the big-endian struct
 * kauth_filesec acl_copy_ext writes, as bytes written out from the SDK headers (sys/ucred.h,
 * sys/un.h, sys/kauth.h, sys/acl.h); the system calls are fakes. What those bytes mean for
 * the trust check (daemon/trusted-path.ts) is shown on a file-system view whose ACLs come
 * through this code. No Mac has run any of it (docs/platform-macos.md).
 */
import { describe, expect, it } from 'vitest';
import {
  checkTrustedPath,
  type FileView,
  type NodeInfo,
} from '../../../src/daemon/trusted-path.js';
import {
  ACE_RIGHTS,
  KAUTH_ACE_ONLY_INHERIT,
  XUCRED_SIZE,
  decodeAclExt,
  decodePeerPid,
  decodeXucred,
} from '../../../src/native/darwin/layouts.js';
import {
  ACL_TYPE_EXTENDED,
  D,
  aclExternal,
  type AclCalls,
} from '../../../src/native/darwin/libsystem.js';
import {
  LOCAL_PEERCRED,
  LOCAL_PEERPID,
  SOL_LOCAL,
  aclFacts,
  darwinAcl,
  darwinCallerNatives,
  darwinPeerCredentials,
  type DarwinCallerSyscalls,
} from '../../../src/native/darwin/peercred.js';
import { linuxCallerNatives } from '../../../src/native/peercred.js';
import { EVERYONE, WWW, aclExt, pidT, xucred } from '../../helpers/xucred-bytes.js';

const PERMIT = 1;
const DENY = 2;

describe('LOCAL_PEERCRED: struct xucred (sys/ucred.h)', () => {
  it('the constants of sys/un.h and the 76-byte layout: version, uid, short ngroups, 2 bytes of padding, 16 gids from 12', () => {
    expect([SOL_LOCAL, LOCAL_PEERCRED, LOCAL_PEERPID]).toEqual([0, 1, 2]);
    expect(XUCRED_SIZE).toBe(4 + 4 + 2 + 2 + 16 * 4);
    const b = xucred(
      501,
      [20, 12, 61, 79, 80, 81, 98, 701, 33, 100, 204, 250, 395, 398, 399, 400],
      { ngroups: 3, padding: 0xbeef },
    );
    expect(Buffer.from(b.subarray(0, 16)).toString('hex')).toBe(
      '00000000' + 'f5010000' + '0300' + 'efbe' + '14000000',
    );
    // cr_groups[0] is the effective gid; only cr_ngroups of the 16 slots count; the padding is ignored
    expect(decodeXucred(b, XUCRED_SIZE)).toEqual({ uid: 501, gid: 20, groups: [20, 12, 61] });
    expect(
      decodeXucred(
        xucred(0, [0, 1, 2, 3, 4, 5, 8, 9, 12, 20, 29, 61, 80, 33, 98, 100]),
        XUCRED_SIZE,
      ).groups,
    ).toHaveLength(16);
  });

  it('anything but a whole version-0 xucred with 1..16 groups is refused (a packed 74-byte reading, another version)', () => {
    expect(() => decodeXucred(xucred(501, [20]), 74)).toThrow(/74 bytes/);
    expect(() => decodeXucred(xucred(501, [20], { version: 1 }), XUCRED_SIZE)).toThrow(/version 1/);
    expect(() => decodeXucred(xucred(501, [20], { ngroups: 17 }), XUCRED_SIZE)).toThrow(
      /17 groups/,
    );
    expect(() => decodeXucred(xucred(501, [20], { ngroups: 0 }), XUCRED_SIZE)).toThrow(/0 groups/);
  });

  it('LOCAL_PEERPID: a pid_t', () => {
    expect(decodePeerPid(pidT(4242), 4)).toBe(4242);
    expect(() => decodePeerPid(pidT(1), 8)).toThrow(/8 bytes/);
  });
});

/** getsockopt answering SOL_LOCAL options for one fd; records every call */
function sockopts(answers: Partial<Record<number, Uint8Array | number>>, fd = 17) {
  const calls: string[] = [];
  const sys: DarwinCallerSyscalls = {
    getsockopt(f, level, name, val) {
      calls.push(`${f} ${level} ${name} ${val.length}`);
      const a = f === fd && level === SOL_LOCAL ? answers[name] : -D.EINVAL;
      if (a === undefined) return -D.EINVAL;
      if (typeof a === 'number') return a;
      val.set(a.subarray(0, val.length));
      return Math.min(a.length, val.length);
    },
    aclExternal: () => null,
  };
  return { sys, calls };
}

describe('darwinPeerCredentials: the PeerCred authz.ts judges', () => {
  it('uid, effective gid and groups from LOCAL_PEERCRED, the pid from LOCAL_PEERPID, each asked with its buffer size', () => {
    const { sys, calls } = sockopts({
      [LOCAL_PEERCRED]: xucred(501, [20, 12, 990]),
      [LOCAL_PEERPID]: pidT(4242),
    });
    expect(darwinPeerCredentials(17, sys)).toEqual({
      pid: 4242,
      uid: 501,
      gid: 20,
      groups: [20, 12, 990],
    });
    expect(calls).toEqual(['17 0 1 76', '17 0 2 4']);
  });

  it('a failing call cuts the caller off with its errno (ENOTCONN: the peer has gone)', () => {
    expect(() =>
      darwinPeerCredentials(17, sockopts({ [LOCAL_PEERCRED]: -D.ENOTCONN }).sys),
    ).toThrow(
      expect.objectContaining({ kind: 'driver', message: 'getsockopt(LOCAL_PEERCRED): errno 57' }),
    );
    expect(() =>
      darwinPeerCredentials(
        17,
        sockopts({ [LOCAL_PEERCRED]: xucred(0, [0]), [LOCAL_PEERPID]: -D.ENOTCONN }).sys,
      ),
    ).toThrow(/LOCAL_PEERPID\): errno 57/);
    // a short answer is not read as credentials
    expect(() =>
      darwinPeerCredentials(
        17,
        sockopts({ [LOCAL_PEERCRED]: xucred(0, [0]).subarray(0, 12), [LOCAL_PEERPID]: pidT(1) })
          .sys,
      ),
    ).toThrow(/12 bytes/);
  });
});

describe('extended ACLs: acl_copy_ext’s kauth_filesec (sys/kauth.h), big-endian', () => {
  it('magic, zeroed GUIDs, entry count at 36, flags at 40, 24-byte entries from 44: applicable GUID, flags (kind in the low 4 bits), rights', () => {
    // chmod +a "everyone deny delete" (Apple's usual protective entry)
    const b = aclExt([{ who: EVERYONE, kind: DENY, rights: ACE_RIGHTS.DELETE }]);
    expect(b.length).toBe(68);
    expect(Buffer.from(b.subarray(0, 4)).toString('hex')).toBe('012cc16d');
    expect(Buffer.from(b.subarray(36, 68)).toString('hex')).toBe(
      '00000001' + '00000000' + 'abcdefabcdefabcdefabcdef0000000c' + '00000002' + '00000010',
    );
    expect(decodeAclExt(b, b.length)).toEqual([
      { applicable: EVERYONE, kind: DENY, flags: DENY, rights: 0x10 },
    ]);
  });

  it('the rights are sys/acl.h’s ACL_* values (the KAUTH_VNODE_* bits)', () => {
    expect(ACE_RIGHTS).toMatchObject({
      READ_DATA: 0x2,
      WRITE_DATA: 0x4,
      EXECUTE: 0x8,
      DELETE: 0x10,
      APPEND_DATA: 0x20,
      DELETE_CHILD: 0x40,
      WRITE_ATTRIBUTES: 0x100,
      WRITE_EXTATTRIBUTES: 0x400,
      WRITE_SECURITY: 0x1000,
      TAKE_OWNERSHIP: 0x2000,
    });
    expect(ACE_RIGHTS.GENERIC_ALL).toBe(0x200000);
    expect(KAUTH_ACE_ONLY_INHERIT).toBe(0x100);
    expect(ACL_TYPE_EXTENDED).toBe(0x100);
  });

  it('no ACL (entry count 0xffffffff) is no entries; a wrong magic or a length that does not fit the count is refused', () => {
    expect(decodeAclExt(aclExt([], { count: 0xffffffff }), 44)).toEqual([]);
    expect(() => decodeAclExt(aclExt([], { magic: 0x6dc12c01 }), 44)).toThrow(/magic 0x6dc12c01/); // a native little-endian copy
    expect(() =>
      decodeAclExt(aclExt([{ who: EVERYONE, kind: PERMIT, rights: 2 }], { count: 2 }), 68),
    ).toThrow(/68 bytes for 2 entries/);
    expect(() => decodeAclExt(new Uint8Array(40), 40)).toThrow(/40 bytes/);
  });

  it('what the entries add to the mode, as the kernel evaluates them', () => {
    const facts = (e: Parameters<typeof aclExt>[0]) =>
      aclFacts(decodeAclExt(aclExt(e), 44 + 24 * e.length));
    expect(facts([])).toBeUndefined();
    expect(facts([{ who: EVERYONE, kind: DENY, rights: ACE_RIGHTS.DELETE }])).toBeUndefined();
    for (const r of [
      'WRITE_DATA',
      'APPEND_DATA',
      'DELETE',
      'DELETE_CHILD',
      'WRITE_ATTRIBUTES',
      'WRITE_EXTATTRIBUTES',
      'WRITE_SECURITY',
      'TAKE_OWNERSHIP',
      'GENERIC_WRITE',
    ] as const)
      expect(facts([{ who: WWW, kind: PERMIT, rights: ACE_RIGHTS[r] }]), r).toMatchObject({
        grantsWrite: true,
        decidesRead: false,
      });
    expect(facts([{ who: WWW, kind: PERMIT, rights: ACE_RIGHTS.GENERIC_ALL }])).toMatchObject({
      grantsWrite: true,
      decidesRead: true,
    });
    // a deny never grants; read or search in any entry means the mode does not tell who may read
    expect(
      facts([{ who: WWW, kind: DENY, rights: ACE_RIGHTS.WRITE_DATA | ACE_RIGHTS.READ_DATA }]),
    ).toMatchObject({ grantsWrite: false, decidesRead: true });
    expect(facts([{ who: EVERYONE, kind: PERMIT, rights: ACE_RIGHTS.EXECUTE }])).toMatchObject({
      grantsWrite: false,
      decidesRead: true,
    });
    expect(
      facts([
        {
          who: EVERYONE,
          kind: PERMIT,
          rights: ACE_RIGHTS.READ_ATTRIBUTES | ACE_RIGHTS.READ_SECURITY,
        },
      ]),
    ).toBeUndefined();
    // inherit-only entries do not apply to the object; audit/alarm entries are never evaluated
    expect(
      facts([
        {
          who: WWW,
          kind: PERMIT,
          flags: KAUTH_ACE_ONLY_INHERIT | 0x60,
          rights: ACE_RIGHTS.WRITE_DATA,
        },
      ]),
    ).toBeUndefined();
    expect(facts([{ who: WWW, kind: 3, rights: ACE_RIGHTS.WRITE_DATA }])).toBeUndefined();
    // an inherited entry (applies) does
    expect(
      facts([{ who: WWW, kind: PERMIT, flags: 0x10, rights: ACE_RIGHTS.WRITE_DATA }]),
    ).toMatchObject({ grantsWrite: true });
  });
});

describe('aclExternal: acl_get_link_np → acl_size → acl_copy_ext → acl_free (a fake library)', () => {
  function lib(o: {
    acl?: object | null;
    size?: number;
    copied?: number;
    errno?: number;
    bytes?: Uint8Array;
  }) {
    const seen: string[] = [];
    let errnoNow = o.errno ?? 0;
    const l: AclCalls = {
      acl_get_link_np: (path, type) => (
        seen.push(`get ${path} 0x${type.toString(16)}`),
        o.acl === undefined ? {} : o.acl
      ),
      acl_size: () => (seen.push('size'), o.size ?? o.bytes?.length ?? 44),
      acl_copy_ext: (buf, _acl, size) => {
        seen.push(`copy ${buf.length} ${size}`);
        if (o.bytes) buf.set(o.bytes);
        return o.copied ?? size;
      },
      acl_free: () => {
        seen.push('free');
        errnoNow = 0; // free() may clobber errno
        return 0;
      },
    };
    return { l, seen, err: () => errnoNow };
  }

  it('an ACL comes back as its external bytes; the acl_t is freed', () => {
    const bytes = aclExt([{ who: WWW, kind: PERMIT, rights: ACE_RIGHTS.WRITE_DATA }]);
    const f = lib({ bytes });
    expect(aclExternal('/etc/awg/awg.yaml', f.l, f.err)).toEqual(bytes);
    expect(f.seen).toEqual(['get /etc/awg/awg.yaml 0x100', 'size', 'copy 68 68', 'free']);
  });

  it('NULL with ENOENT (or ENOTSUP) is "no ACL"; other errors are -errno, read before free', () => {
    const none = lib({ acl: null, errno: D.ENOENT });
    expect(aclExternal('/x', none.l, none.err)).toBeNull();
    const ns = lib({ acl: null, errno: D.ENOTSUP });
    expect(aclExternal('/x', ns.l, ns.err)).toBeNull();
    const denied = lib({ acl: null, errno: D.EACCES });
    expect(aclExternal('/x', denied.l, denied.err)).toBe(-D.EACCES);
    expect(denied.seen).toEqual(['get /x 0x100']); // nothing to free
    const short = lib({ copied: -1, errno: D.ERANGE });
    expect(aclExternal('/x', short.l, short.err)).toBe(-D.ERANGE);
    expect(short.seen.at(-1)).toBe('free');
  });
});

describe('the trust check with macOS ACLs (darwinCallerNatives on fake system calls)', () => {
  const ALICE = { uid: 501, gid: 20, groups: [20, 990] };
  type E = {
    kind: NodeInfo['kind'];
    mode?: number;
    uid?: number;
    target?: string;
    acl?: Uint8Array;
  };
  const tree = (over: Record<string, E> = {}) => {
    const t: Record<string, E> = {
      '/': { kind: 'dir' },
      '/private': { kind: 'dir' },
      '/private/etc': { kind: 'dir' },
      '/private/etc/awg': { kind: 'dir' },
      '/private/etc/awg/awg.yaml': { kind: 'file' },
      '/etc': { kind: 'symlink', target: 'private/etc' },
      ...over,
    };
    const sys: DarwinCallerSyscalls = {
      getsockopt: () => -D.EINVAL,
      aclExternal: (p) => t[p]?.acl ?? null,
    };
    const natives = darwinCallerNatives(sys);
    const view = (acl: (p: string) => ReturnType<typeof natives.acl>): FileView => ({
      lstat: (p) => {
        const e = t[p];
        if (!e) return undefined;
        const type = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0 }[e.kind];
        return {
          kind: e.kind,
          uid: e.uid ?? 0,
          gid: 0,
          mode:
            type | (e.mode ?? (e.kind === 'dir' ? 0o755 : e.kind === 'symlink' ? 0o755 : 0o644)),
        };
      },
      readlink: (p) => t[p]!.target!,
      acl,
    });
    return { darwin: view(natives.acl), linux: view(linuxCallerNatives.acl) };
  };
  const check = (fs: FileView, reader?: typeof ALICE) => {
    try {
      return checkTrustedPath('config', '/etc/awg/awg.yaml', { fs, ...(reader ? { reader } : {}) });
    } catch (e) {
      expect(e).toMatchObject({ kind: 'permission' });
      return (e as Error).message;
    }
  };
  const allowWrite = aclExt([
    { who: EVERYONE, kind: PERMIT, rights: ACE_RIGHTS.WRITE_DATA | ACE_RIGHTS.APPEND_DATA },
  ]);
  const addFile = aclExt([
    { who: WWW, kind: PERMIT, rights: ACE_RIGHTS.WRITE_DATA | ACE_RIGHTS.DELETE_CHILD },
  ]);

  it('a root-owned 0644 file in root-owned directories passes (control), through the /etc link', () => {
    expect(check(tree().darwin)).toBe('/private/etc/awg/awg.yaml');
    expect(check(tree().darwin, ALICE)).toBe('/private/etc/awg/awg.yaml');
  });

  it('`everyone allow write` on that 0644 file is refused, with or without a reader: the mode does not show it', () => {
    const t = tree({ '/private/etc/awg/awg.yaml': { kind: 'file', acl: allowWrite } });
    expect(check(t.darwin)).toBe(
      'config /etc/awg/awg.yaml is not trusted: file /private/etc/awg/awg.yaml has an extended ACL (ls -le) that lets others change it',
    );
    expect(check(t.darwin, ALICE)).toContain('that lets others change it');
  });

  it('a directory whose ACL lets _www add or delete entries is refused anywhere on the path', () => {
    expect(check(tree({ '/private/etc': { kind: 'dir', acl: addFile } }).darwin)).toContain(
      'directory /private/etc has an extended ACL (ls -le) that lets others change it',
    );
  });

  it('an ACL on the symbolic link itself that grants write is refused', () => {
    expect(
      check(tree({ '/etc': { kind: 'symlink', target: 'private/etc', acl: allowWrite } }).darwin),
    ).toContain('symbolic link /etc has an extended ACL');
  });

  it('`everyone deny delete` changes nothing; an ACL naming read is refused only for a reader', () => {
    const denyDelete = aclExt([{ who: EVERYONE, kind: DENY, rights: ACE_RIGHTS.DELETE }]);
    expect(
      check(tree({ '/private/etc/awg': { kind: 'dir', acl: denyDelete } }).darwin, ALICE),
    ).toBe('/private/etc/awg/awg.yaml');
    const denyRead = tree({
      '/private/etc/awg/awg.yaml': {
        kind: 'file',
        acl: aclExt([{ who: EVERYONE, kind: DENY, rights: ACE_RIGHTS.READ_DATA }]),
      },
    });
    expect(check(denyRead.darwin, ALICE)).toBe(
      'config /etc/awg/awg.yaml is not trusted: file /private/etc/awg/awg.yaml has an extended ACL (ls -le), so its mode does not tell whether uid 501 may read it',
    );
    expect(check(denyRead.darwin)).toBe('/private/etc/awg/awg.yaml');
  });

  it('a failing ACL read refuses (never "no ACL")', () => {
    const t = tree();
    const fs: FileView = {
      ...t.darwin,
      acl: (p) => darwinAcl(p, { getsockopt: () => -1, aclExternal: () => -D.EACCES }),
    };
    expect(() => checkTrustedPath('config', '/etc/awg/awg.yaml', { fs })).toThrow(
      expect.objectContaining({ kind: 'permission', message: 'acl_get_link_np /: errno 13' }),
    );
  });
});
