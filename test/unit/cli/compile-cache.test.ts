/**
 * The installed CLI's compile cache (bin/compile-cache.js): V8 code read from it runs as whoever
 * runs awg, so it is used only from a directory no one else can change — itself and every
 * directory above it.
 */
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileCacheDir, safeDir } from '../../../bin/compile-cache.js';

const uid = process.geteuid!();
let base = '';
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'awgt-cc-')); // 0700, below /tmp (sticky, root's)
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('compileCacheDir', () => {
  it('creates the directory 0700 and uses it', () => {
    const dir = join(base, 'a', 'compile');
    expect(compileCacheDir({ AWG_COMPILE_CACHE_DIR: dir }, uid)).toBe(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('is off with AWG_COMPILE_CACHE=0', () => {
    expect(
      compileCacheDir({ AWG_COMPILE_CACHE: '0', AWG_COMPILE_CACHE_DIR: join(base, 'c') }, uid),
    ).toBeUndefined();
  });

  it("a user's default is under XDG_CACHE_HOME (or ~/.cache); root's own directories count as safe", () => {
    // made by this process: root's in CI (trusted for any user), else this user's (not 4242's)
    const dir = compileCacheDir({ XDG_CACHE_HOME: join(base, 'xdg') }, 4242);
    expect(dir).toBe(uid === 0 ? join(base, 'xdg', 'awg', 'compile') : undefined);
  });

  it('refuses a directory others can read or write', () => {
    const dir = join(base, 'open');
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o755);
    expect(compileCacheDir({ AWG_COMPILE_CACHE_DIR: dir }, uid)).toBeUndefined();
  });

  it('refuses a group- or world-writable directory above it', () => {
    const parent = join(base, 'shared');
    mkdirSync(join(parent, 'compile'), { recursive: true, mode: 0o700 });
    chmodSync(parent, 0o770);
    expect(
      compileCacheDir({ AWG_COMPILE_CACHE_DIR: join(parent, 'compile') }, uid),
    ).toBeUndefined();
    chmodSync(parent, 0o777);
    expect(safeDir(join(parent, 'compile'), uid)).toBe(false);
  });

  it('refuses a symlink', () => {
    const real = join(base, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(base, 'link'));
    expect(compileCacheDir({ AWG_COMPILE_CACHE_DIR: join(base, 'link') }, uid)).toBeUndefined();
  });

  it.runIf(uid === 0)("refuses a directory (or one above it) of another user's", () => {
    const theirs = join(base, 'theirs');
    mkdirSync(join(theirs, 'compile'), { recursive: true, mode: 0o700 });
    chownSync(join(theirs, 'compile'), 4242, 4242);
    expect(safeDir(join(theirs, 'compile'), 0)).toBe(false);
    chownSync(join(theirs, 'compile'), 0, 0);
    chownSync(theirs, 4242, 4242);
    expect(safeDir(join(theirs, 'compile'), 0)).toBe(false);
    // a sticky world-writable directory counts only when root owns it
    chmodSync(theirs, 0o1777);
    expect(safeDir(join(theirs, 'compile'), 0)).toBe(false);
    chownSync(theirs, 0, 0);
    expect(safeDir(join(theirs, 'compile'), 0)).toBe(true);
    // as the other user: their own tree is theirs to use
    chownSync(join(theirs, 'compile'), 4242, 4242);
    chmodSync(theirs, 0o755);
    expect(safeDir(join(theirs, 'compile'), 4242)).toBe(true);
  });
});
