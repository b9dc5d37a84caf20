/**
 * The clean pages of mapped files given back once a long-running process settles
 * (native/settle.ts): the node executable's code and read-only data (V8's startup snapshot,
 * ICU's tables, builtins and compiler code that start-up and the first traffic ran once) and
 * the same in the shared libraries. `madvise(MADV_DONTNEED)` unmaps them from this process;
 * the page cache keeps the file's contents, and the pages still in use come back on their next
 * access (a minor fault, no read from disk). Only mappings that cannot hold data of their own
 * are released: private, not writable, backed by a file, with no anonymous (copied-on-write)
 * page — RELRO and relocated text have those and are left alone — and none locked. On Node 22
 * and 24 the executable's resident pages were 47 MiB of the 87 MiB `awg up` held after traffic.
 * Measurements: bench/RESULTS.md, section "Step 24 — memory of `awg up` on Node 20/22/24".
 * Linux with glibc on x64/arm64 only; AWG_SETTLE_FILE_PAGES=0 turns it off.
 */
import { readFileSync } from 'node:fs';
import { rawLibcFunc } from './libc.js';

const MADV_DONTNEED = 4;

export interface FileMapping {
  start: bigint;
  end: bigint;
  path: string;
  /** resident KiB */
  rssKiB: number;
}

/** The mappings of an smaps text whose resident pages are clean copies of a file. */
export function cleanFileMappings(smaps: string): FileMapping[] {
  const out: FileMapping[] = [];
  let cur: (FileMapping & { ok: boolean }) | undefined;
  const done = () => {
    if (cur?.ok && cur.rssKiB > 0)
      out.push({ start: cur.start, end: cur.end, path: cur.path, rssKiB: cur.rssKiB });
  };
  for (const line of smaps.split('\n')) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (h) {
      done();
      const [, start, end, perms, inode, path] = h;
      cur = {
        start: BigInt(`0x${start}`),
        end: BigInt(`0x${end}`),
        path: path!,
        rssKiB: 0,
        ok: perms![1] === '-' && perms![3] === 'p' && inode !== '0' && path!.startsWith('/'),
      };
      continue;
    }
    if (!cur) continue;
    const f = /^(\w+):\s+(\d+) kB/.exec(line);
    if (!f) {
      // VmFlags: mappings locked or of I/O memory are not released
      if (/^VmFlags:.*\b(lo|io|pf)\b/.test(line)) cur.ok = false;
      continue;
    }
    const kib = Number(f[2]);
    if (f[1] === 'Rss') cur.rssKiB = kib;
    else if (
      (f[1] === 'Anonymous' ||
        f[1] === 'Locked' ||
        f[1] === 'Private_Dirty' ||
        f[1] === 'Shared_Dirty') &&
      kib > 0
    )
      cur.ok = false;
  }
  done();
  return out;
}

/** Releases the clean file pages of this process; returns the bytes that were resident. */
export function releaseFilePages(): number {
  if (process.env.AWG_SETTLE_FILE_PAGES === '0') return 0;
  const madvise = rawLibcFunc<(addr: bigint, len: number, advice: number) => number>(
    'int madvise(uintptr_t addr, size_t len, int advice)',
  );
  if (!madvise) return 0;
  let smaps: string;
  try {
    smaps = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return 0;
  }
  let released = 0;
  for (const m of cleanFileMappings(smaps))
    if (madvise(m.start, Number(m.end - m.start), MADV_DONTNEED) === 0) released += m.rssKiB * 1024;
  return released;
}
