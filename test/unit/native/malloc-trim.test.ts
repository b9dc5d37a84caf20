/**
 * mallocTrim (src/native/libc.ts): glibc's malloc_trim(0), which the daemon calls once its
 * runs settle. Freed chunks that live ones keep inside the heap stay resident until trimmed;
 * the call gives their pages back to the kernel.
 */
import { readFileSync } from 'node:fs';
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { mallocTrim } from '../../../src/native/libc.js';

const rssAnonKiB = () =>
  Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

describe.runIf(
  process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64'),
)('mallocTrim', () => {
  it('gives the pages of freed heap chunks below live ones back (RSS drops by about what was freed)', () => {
    mallocTrim();
    // 64 KiB chunks (under the 128 KiB mmap threshold: from the heap), written so they are
    // resident, then every other one freed: 32 holes of 64 KiB that glibc keeps
    const SIZE = 64 * 1024;
    const blocks = Array.from({ length: 64 }, () => koffi.alloc('uint8_t', SIZE));
    for (const b of blocks) new Uint8Array(koffi.view(b, SIZE)).fill(1);
    for (let i = 0; i < blocks.length; i += 2) koffi.free(blocks[i]);
    const before = rssAnonKiB();
    expect(mallocTrim()).toBe(true);
    const released = before - rssAnonKiB();
    for (let i = 1; i < blocks.length; i += 2) koffi.free(blocks[i]);
    expect(released).toBeGreaterThanOrEqual(1024); // of the 2,048 KiB freed
  });
});
