/**
 * The exec gate without a kernel: what an exec opens after the file it names (exec-file.ts,
 * on real binaries of this machine and on crafted bytes), which file systems the rules need
 * marked (gate-marks.ts), and the gate's answering loop over a fake group (gate.ts).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import type { FanotifyEvent } from '../../../src/native/fanotify.js';
import { HEAD_BYTES, followUpOf } from '../../../src/procs/exec-file.js';
import { parseMountinfo, planGateMarks, ruleTree } from '../../../src/procs/gate-marks.js';
import {
  ExecGate,
  type GateDecision,
  type GateFiles,
  type GateGroup,
} from '../../../src/procs/gate.js';

const rule = (r: Record<string, unknown>) => Rule.parse(r);

describe('exec-file: the files an exec pulls in', () => {
  it('finds the ELF interpreter of a real dynamic program and the interpreter of a #! line', () => {
    const sh = readFileSync(realpathSync('/bin/sh')).subarray(0, HEAD_BYTES);
    const f = followUpOf(sh);
    expect(f?.kind).toBe('elf');
    expect(f?.interpreter).toMatch(/^\/lib.*\/ld-linux.*\.so\.\d$/);
    expect(followUpOf(Buffer.from('#!/bin/sh -e\necho hi\n'))).toEqual({
      kind: 'script',
      interpreter: '/bin/sh',
    });
    expect(followUpOf(Buffer.from('#! \t/usr/bin/env python3\n'))).toEqual({
      kind: 'script',
      interpreter: '/usr/bin/env',
    });
  });

  it('returns nothing for a static-like ELF, an empty #! line, text, or truncated and hostile headers', () => {
    expect(followUpOf(Buffer.from('#!\n'))).toBeUndefined();
    expect(followUpOf(Buffer.from('plain text'))).toBeUndefined();
    expect(followUpOf(Buffer.alloc(0))).toBeUndefined();
    const sh = readFileSync(realpathSync('/bin/sh'));
    // the header table cut off
    expect(followUpOf(sh.subarray(0, 70))).toBeUndefined();
    // phoff pointing far outside, phentsize too small, an interpreter path past the end
    const bad = Buffer.from(sh.subarray(0, HEAD_BYTES));
    bad.writeBigUInt64LE(0xffffffffn, 0x20);
    expect(followUpOf(bad)).toBeUndefined();
    const small = Buffer.from(sh.subarray(0, HEAD_BYTES));
    small.writeUInt16LE(8, 0x36);
    expect(followUpOf(small)).toBeUndefined();
    // a 64-bit ELF with no program headers (PT_INTERP absent): a static program
    const noPh = Buffer.from(sh.subarray(0, 64));
    noPh.writeUInt16LE(0, 0x38);
    expect(followUpOf(noPh)).toBeUndefined();
  });

  it('reads a 32-bit big-endian ELF too', () => {
    const b = Buffer.alloc(200);
    b.writeUInt32BE(0x7f454c46, 0);
    b[4] = 1; // ELFCLASS32
    b[5] = 2; // big endian
    b.writeUInt32BE(52, 0x1c); // phoff
    b.writeUInt16BE(32, 0x2a); // phentsize
    b.writeUInt16BE(1, 0x2c); // phnum
    b.writeUInt32BE(3, 52); // PT_INTERP
    b.writeUInt32BE(100, 56); // p_offset
    b.writeUInt32BE(14, 68); // p_filesz
    b.write('/lib/ld.so.1\0\0', 100, 'latin1');
    expect(followUpOf(b)).toEqual({ kind: 'elf', interpreter: '/lib/ld.so.1' });
  });
});

const MOUNTINFO = [
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '22 27 0:22 / /proc rw,nosuid - proc proc rw',
  '24 27 0:6 / /dev rw - devtmpfs devtmpfs rw',
  '30 27 0:30 / /opt rw,relatime - xfs /dev/vdb rw',
  '31 30 0:31 / /opt/work/cache rw - tmpfs tmpfs rw',
  '32 27 0:32 / /tmp rw,nosuid,nodev,noexec - tmpfs tmpfs rw',
  '33 27 0:30 /data /srv/data rw - xfs /dev/vdb rw',
  '34 27 0:34 / /mnt/my\\040disk rw - ext4 /dev/vdc rw',
].join('\n');

describe('gate-marks: which file systems the rules need', () => {
  const mounts = parseMountinfo(MOUNTINFO);

  it('parses mountinfo (escapes, noexec)', () => {
    expect(mounts.find((m) => m.mountPoint === '/mnt/my disk')).toMatchObject({
      dev: '0:34',
      fsType: 'ext4',
      noexec: false,
    });
    expect(mounts.find((m) => m.mountPoint === '/tmp')?.noexec).toBe(true);
  });

  it('dir and path rules mark the file system holding their tree and those mounted below it', () => {
    expect(planGateMarks([rule({ match: { dir: '/opt/work/' }, target: 'vpn' })], mounts)).toEqual({
      scope: 'trees',
      marks: [
        { path: '/opt', dev: '0:30', fsType: 'xfs' },
        { path: '/opt/work/cache', dev: '0:31', fsType: 'tmpfs' },
      ],
    });
    expect(ruleTree(rule({ match: { path: '/usr/lib/*/firefox' }, target: 'vpn' }))).toBe(
      '/usr/lib',
    );
    expect(ruleTree(rule({ match: { path: '/usr/bin/curl' }, target: 'vpn' }))).toBe(
      '/usr/bin/curl',
    );
    expect(
      planGateMarks([rule({ match: { path: '/usr/bin/curl' }, target: 'vpn' })], mounts).marks.map(
        (m) => m.path,
      ),
    ).toEqual(['/']);
    // a tree on a noexec file system needs no mark: nothing can be exec'd from there
    expect(
      planGateMarks([rule({ match: { dir: '/tmp/x' }, target: 'vpn' })], mounts).marks,
    ).toEqual([]);
    // the same file system reached twice (/opt and a bind mount of it) is marked once
    expect(
      planGateMarks(
        [
          rule({ match: { dir: '/opt/a' }, target: 'vpn' }),
          rule({ match: { dir: '/srv/data' }, target: 'vpn' }),
        ],
        mounts,
      ).marks.map((m) => m.path),
    ).toEqual(['/opt']);
  });

  it('name, regex and ignoreCase rules need every file system an exec can come from; disabled rules none', () => {
    const all = planGateMarks(
      [
        rule({ match: { dir: '/opt' }, target: 'vpn' }),
        rule({ match: { name: 'curl' }, target: 'vpn' }),
      ],
      mounts,
    );
    expect(all.scope).toBe('all');
    expect(all.marks.map((m) => m.path)).toEqual(['/', '/opt', '/opt/work/cache', '/mnt/my disk']);
    expect(
      planGateMarks([rule({ match: { dir: '/opt', ignoreCase: true }, target: 'vpn' })], mounts)
        .scope,
    ).toBe('all');
    expect(
      planGateMarks([rule({ match: { regex: 'x' }, target: 'vpn', enabled: false })], mounts),
    ).toEqual({ marks: [], scope: 'none' });
  });
});

/** a group whose queue the test fills; records answers in order */
function fakeGroup() {
  const queue: FanotifyEvent[][] = [];
  const allowed: number[] = [];
  const denied: number[] = [];
  let closed = false;
  const g: GateGroup & {
    queue: FanotifyEvent[][];
    allowed: number[];
    denied: number[];
    closed: () => boolean;
  } = {
    fd: 5,
    queue,
    allowed,
    denied,
    closed: () => closed,
    readEvents: () => queue.shift() ?? [],
    allow: (ev) => void allowed.push(ev.fd),
    deny: (ev) => void denied.push(ev.fd),
    close: () => void (closed = true),
  };
  return g;
}

/** files by event fd: path, head, identity; identities of interpreter paths */
function fakeFiles(
  byFd: Record<number, { path: string; head?: string | Buffer; id: string }>,
  byPath: Record<string, string>,
): GateFiles {
  return {
    pathOf: (ev) => byFd[ev.fd]?.path,
    head: (fd) => {
      const h = byFd[fd]?.head;
      return typeof h === 'string' ? Buffer.from(h) : (h ?? Buffer.alloc(0));
    },
    idOfFd: (fd) => byFd[fd]?.id,
    idOfPath: (p) => byPath[p],
  };
}

/** an ELF head whose PT_INTERP is `interp` */
function elfWithInterp(interp: string): Buffer {
  const b = Buffer.alloc(256);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = 1;
  b.writeBigUInt64LE(64n, 0x20);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(1, 0x38);
  b.writeUInt32LE(3, 64);
  b.writeBigUInt64LE(200n, 72);
  b.writeBigUInt64LE(BigInt(interp.length + 1), 96);
  b.write(interp, 200, 'latin1');
  return b;
}

const ev = (pid: number, fd: number): FanotifyEvent => ({ mask: 0x40000n, fd, pid });

describe('ExecGate: deciding and answering', () => {
  const LD = elfWithInterp('/lib64/ld-linux-x86-64.so.2');
  /**
   * a clock that does not move: a pass's 100 ms deadline is the lateness test's own subject
   * (it drives its clock by hand); on the real clock a slow first decision on a loaded machine
   * made the later events of the same pass late, undecided (CI run #14, Node 24)
   */
  const now = () => 0;

  it('the file named decides; the ELF loader that follows never does; every event is answered', () => {
    const g = fakeGroup();
    const decided: [number, string, boolean][] = [];
    const files = fakeFiles(
      {
        10: { path: '/opt/work/tool', head: LD, id: 'a' },
        11: { path: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', id: 'ld' },
        12: { path: '/usr/bin/ls', head: LD, id: 'b' },
        13: { path: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', id: 'ld' },
      },
      { '/lib64/ld-linux-x86-64.so.2': 'ld' },
    );
    const gate = new ExecGate({
      group: g,
      files,
      now,
      decide: (pid, f, named) => (
        decided.push([pid, f, named]),
        f.startsWith('/opt/work') ? 'placed' : 'miss'
      ),
    });
    g.queue.push([ev(100, 10), ev(100, 11)], [ev(101, 12), ev(101, 13)]);
    gate.pump();
    expect(decided).toEqual([
      [100, '/opt/work/tool', true],
      [101, '/usr/bin/ls', true],
    ]);
    expect(g.allowed).toEqual([10, 11, 12, 13]);
    expect(gate.stats).toMatchObject({ events: 4, execs: 2, placed: 1, errors: 0 });
  });

  it('a script decides by its own path; when no rule matches it, its interpreter does (what /proc shows afterwards)', () => {
    const g = fakeGroup();
    const decided: [string, boolean][] = [];
    const files = fakeFiles(
      {
        20: { path: '/opt/work/run.sh', head: '#!/bin/sh\n', id: 's1' },
        21: { path: '/usr/bin/dash', head: LD, id: 'dash' },
        22: { path: '/usr/lib/ld.so', id: 'ld' },
        23: { path: '/home/u/x.py', head: '#!/usr/bin/python3\n', id: 's2' },
        24: { path: '/usr/bin/python3.11', head: LD, id: 'py' },
        25: { path: '/usr/lib/ld.so', id: 'ld' },
      },
      { '/bin/sh': 'dash', '/usr/bin/python3': 'py', '/lib64/ld-linux-x86-64.so.2': 'ld' },
    );
    const decide = (_pid: number, f: string, named: boolean): GateDecision => (
      decided.push([f, named]),
      f.startsWith('/opt/work') || f.includes('python') ? 'placed' : 'miss'
    );
    const gate = new ExecGate({ group: g, files, decide, now });
    g.queue.push([ev(200, 20), ev(200, 21), ev(200, 22)], [ev(201, 23), ev(201, 24), ev(201, 25)]);
    gate.pump();
    expect(decided).toEqual([
      ['/opt/work/run.sh', true],
      ['/home/u/x.py', true],
      ['/usr/bin/python3.11', false],
    ]);
    expect(g.allowed).toEqual([20, 21, 22, 23, 24, 25]);
    expect(gate.stats).toMatchObject({ execs: 2, placed: 2 });
  });

  it('answers even when deciding throws or the file cannot be read; skips deciding past the deadline; ignores overflow', () => {
    const g = fakeGroup();
    let t = 0;
    const files = fakeFiles(
      {
        30: { path: '/opt/a', id: 'x' },
        32: { path: '/opt/c', id: 'z' },
        33: { path: '/opt/d', id: 'w' },
      },
      {},
    );
    const decide = (pid: number): GateDecision => {
      if (pid === 300) throw new Error('boom');
      t += 150; // a slow decision: the next one in this pass is past the deadline
      return 'placed';
    };
    const gate = new ExecGate({ group: g, files, decide, now: () => t, deadlineMs: 100 });
    // 31: the file's path is unknown (fail open); -1: queue overflow, nothing to answer
    g.queue.push([ev(300, 30), ev(301, 31), ev(302, 32), ev(303, 33), ev(304, -1)]);
    gate.pump();
    expect(g.allowed).toEqual([30, 31, 32, 33]);
    expect(gate.stats).toMatchObject({ events: 4, errors: 1, placed: 1, late: 1, overflows: 1 });
  });

  it('refuses an exec the placer could not place for a block/drop rule (FAN_DENY), by its own path or its interpreter', () => {
    const g = fakeGroup();
    const files = fakeFiles(
      {
        50: { path: '/opt/work/tool', id: 'a' },
        51: { path: '/home/u/s.sh', head: '#!/opt/work/sh\n', id: 's' },
        52: { path: '/opt/work/sh', id: 'sh' },
        53: { path: '/usr/bin/ls', id: 'l' },
      },
      { '/opt/work/sh': 'sh' },
    );
    const gate = new ExecGate({
      group: g,
      files,
      now,
      decide: (_pid, f) => (f.startsWith('/opt/work') ? 'deny' : 'miss'),
    });
    g.queue.push([ev(500, 50), ev(501, 51), ev(501, 52), ev(502, 53)]);
    gate.pump();
    expect(g.denied).toEqual([50, 52]);
    expect(g.allowed).toEqual([51, 53]);
    expect(gate.stats).toMatchObject({ events: 4, denied: 2 });
  });

  it('a failing answer is reported and the rest are still answered; close closes the group', () => {
    const g = fakeGroup();
    const errors: string[] = [];
    const allow = g.allow;
    g.allow = (e) => {
      if (e.fd === 40) throw new Error('EBADF');
      allow(e);
    };
    const gate = new ExecGate({
      group: g,
      files: fakeFiles({}, {}),
      now,
      decide: () => 'miss',
      onError: (m) => errors.push(m),
    });
    g.queue.push([ev(1, 40), ev(2, 41)]);
    gate.pump();
    expect(g.allowed).toEqual([41]);
    expect(errors).toEqual(['exec gate: EBADF']);
    gate.close();
    expect(g.closed()).toBe(true);
  });
});
