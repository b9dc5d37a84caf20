/**
 * releasePages (src/native/rawmem.ts): madvise(MADV_DONTNEED) over the whole pages inside a
 * buffer, which an idle device calls on its packet buffers (dataplane/buffers.ts). The pages
 * leave the process's RSS and read as zeros; the partial pages at either end are not touched.
 */
import { readFileSync } from 'node:fs';
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { releasePages } from '../../../src/native/rawmem.js';

const rssAnonKiB = () =>
  Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const PAGE = 4096;

describe.runIf(
  process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64'),
)('releasePages', () => {
  it('zeroes the whole pages inside the view and keeps the bytes of the partial pages at its ends', () => {
    const buf = Buffer.allocUnsafeSlow(64 * 1024);
    buf.fill(0xaa);
    // a view starting and ending mid-page
    const view = buf.subarray(100, buf.length - 100);
    const n = releasePages(view);
    expect(n % PAGE).toBe(0);
    expect(n).toBeGreaterThanOrEqual(buf.length - 3 * PAGE);
    expect(n).toBeLessThanOrEqual(view.length);
    // outside the view: untouched
    expect(buf.subarray(0, 100).every((b) => b === 0xaa)).toBe(true);
    expect(buf.subarray(buf.length - 100).every((b) => b === 0xaa)).toBe(true);
    // inside: exactly n bytes read as zero, one run of whole pages; the rest kept its bytes
    const zeros = view.reduce((k, b) => k + (b === 0 ? 1 : 0), 0);
    expect(zeros).toBe(n);
    const first = view.indexOf(0);
    expect(view.subarray(first, first + n).every((b) => b === 0)).toBe(true);
    // the memory is usable again at once
    view.fill(0x55);
    expect(view.every((b) => b === 0x55)).toBe(true);
  });

  it('gives the pages back to the kernel (RssAnon drops by about the buffer) for koffi blocks too', () => {
    const SIZE = 8 * 1024 * 1024;
    const mem = koffi.alloc('uint8_t', SIZE);
    try {
      const view = new Uint8Array(koffi.view(mem, SIZE) as ArrayBuffer);
      view.fill(1);
      const before = rssAnonKiB();
      expect(releasePages(view)).toBeGreaterThanOrEqual(SIZE - 2 * PAGE);
      expect(before - rssAnonKiB()).toBeGreaterThanOrEqual(7 * 1024);
      expect(view[SIZE >> 1]).toBe(0);
    } finally {
      koffi.free(mem);
    }
  });

  it('releases nothing inside a view smaller than a page, or an empty one', () => {
    const buf = Buffer.allocUnsafeSlow(3 * PAGE);
    buf.fill(7);
    expect(releasePages(buf.subarray(10, 10 + PAGE - 20))).toBe(0);
    expect(releasePages(buf.subarray(0, 0))).toBe(0);
    expect(buf.every((b) => b === 7)).toBe(true);
  });
});
