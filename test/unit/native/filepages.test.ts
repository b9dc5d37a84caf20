/**
 * filepages (src/native/filepages.ts): a settled process releases the clean pages of its
 * mapped files (the node executable's code and read-only data); mappings that hold data of
 * their own (written, copied-on-write, locked, shared) are never released.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cleanFileMappings } from '../../../src/native/filepages.js';

const head = (range: string, perms: string, inode: string, path: string) =>
  `${range} ${perms} 00000000 08:01 ${inode}                    ${path}`;
const fields = (rss: number, anon = 0, dirty = 0, locked = 0, flags = 'rd mr mw me') =>
  [
    `Size:               1024 kB`,
    `Rss:                 ${rss} kB`,
    `Private_Dirty:        ${dirty} kB`,
    `Anonymous:            ${anon} kB`,
    `Locked:               ${locked} kB`,
    `VmFlags: ${flags}`,
  ].join('\n');

describe('cleanFileMappings', () => {
  it('takes private read-only file mappings with resident, clean pages only', () => {
    const smaps = [
      head('00400000-00500000', 'r--p', '42', '/usr/bin/node'),
      fields(800),
      head('00500000-00600000', 'r-xp', '42', '/usr/bin/node'),
      fields(900),
      // RELRO: read-only now, but its pages were written (copied on write)
      head('00600000-00610000', 'r--p', '42', '/usr/bin/node'),
      fields(64, 64, 64),
      head('00610000-00620000', 'rw-p', '42', '/usr/bin/node'),
      fields(64, 64, 64),
      head('7f0000000000-7f0000100000', 'rw-p', '0', ''),
      fields(1024, 1024, 1024),
      head('7f0000100000-7f0000200000', 'r--s', '7', '/dev/shm/x'),
      fields(100),
      head('7f0000200000-7f0000300000', 'r-xp', '9', '/usr/lib/libc.so.6'),
      fields(0),
      head('7f0000300000-7f0000400000', 'r-xp', '9', '/usr/lib/libc.so.6'),
      fields(300, 0, 0, 300, 'rd ex mr mw me lo'),
      head('7ffd00000000-7ffd00001000', 'r-xp', '0', '[vdso]'),
      fields(4),
    ].join('\n');
    expect(cleanFileMappings(smaps)).toEqual([
      { start: 0x400000n, end: 0x500000n, path: '/usr/bin/node', rssKiB: 800 },
      { start: 0x500000n, end: 0x600000n, path: '/usr/bin/node', rssKiB: 900 },
    ]);
  });
});

describe.runIf(
  process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64'),
)('releaseFilePages', () => {
  it("drops the node executable's resident pages from RSS, and the process goes on working", () => {
    const script = `
      const { releaseFilePages } = await import(${JSON.stringify(new URL('../../../src/native/filepages.ts', import.meta.url).href)});
      const { readFileSync } = await import('node:fs');
      const { createHash } = await import('node:crypto');
      const file = () => Number(/RssFile:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
      const before = file();
      const released = releaseFilePages();
      const after = file();
      const hash = createHash('sha256').update('awg').digest('hex');
      const date = new Intl.DateTimeFormat('en', { timeZone: 'UTC' }).format(0);
      console.log(JSON.stringify({ before, released, after, hash, date }));`;
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout) as Record<string, number | string>;
    expect(o.released).toBeGreaterThan(8 * 1024 * 1024);
    expect(Number(o.before) - Number(o.after)).toBeGreaterThan(4 * 1024);
    expect(o.hash).toBe(createHash('sha256').update('awg').digest('hex'));
    expect(o.date).toBe('1/1/1970');
  });

  it('is off with AWG_SETTLE_FILE_PAGES=0', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { releaseFilePages } = await import(${JSON.stringify(new URL('../../../src/native/filepages.ts', import.meta.url).href)}); console.log(releaseFilePages());`,
      ],
      { encoding: 'utf8', env: { ...process.env, AWG_SETTLE_FILE_PAGES: '0' } },
    );
    expect(r.stdout.trim()).toBe('0');
  });
});
