import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ListCache, listKey } from '../../../src/util/list-cache.js';
import { tempDir } from '../../helpers/tmp.js';

const URL1 = 'https://lists.example/a.txt';
const fields = { entries: 2, format: 'plain' as const, etag: '"v1"' };

describe('the URL list cache', () => {
  it('writes the copy and its record 0600 in a 0700 directory; reads them back', () => {
    const c = new ListCache(tempDir('awg-lc-'));
    expect(c.read(URL1)).toBeUndefined();
    const m = c.write(
      URL1,
      Buffer.from('a.example\nb.example\n'),
      fields,
      '2026-01-01T00:00:00.000Z',
    );
    expect(m).toMatchObject({ url: URL1, size: 20, entries: 2, etag: '"v1"', format: 'plain' });
    expect(statSync(c.dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(c.dir))
      expect(statSync(join(c.dir, f)).mode & 0o777, f).toBe(0o600);
    const got = c.read(URL1)!;
    expect(got.bytes.toString()).toBe('a.example\nb.example\n');
    expect(got.meta.fetchedAt).toBe('2026-01-01T00:00:00.000Z');
    if (process.getuid?.() === 0)
      expect(statSync(join(c.dir, `${listKey(URL1)}.json`)).uid).toBe(0);
  });

  it('file names come from the SHA-256 of the URL, never from its text', () => {
    const c = new ListCache(tempDir('awg-lc-'));
    const hostile = 'https://x.example/../../../etc/passwd?a=/..%2f&b=\n.json';
    c.write(hostile, Buffer.from('x.example\n'), fields, '2026-01-01T00:00:00.000Z');
    const names = readdirSync(c.dir);
    expect(names.length).toBe(2);
    for (const n of names) expect(n).toMatch(/^[0-9a-f]{64}(\.json|-[0-9a-f]{16}\.body)$/);
    expect(c.read(hostile)!.bytes.toString()).toBe('x.example\n');
  });

  it('a new copy replaces the old one (the old body goes); 304 bumps checkedAt and clears a failure', () => {
    const c = new ListCache(tempDir('awg-lc-'));
    c.write(URL1, Buffer.from('a.example\n'), fields, '2026-01-01T00:00:00.000Z');
    c.recordFailure(URL1, '2026-01-01T01:00:00.000Z', 'HTTP 503');
    expect(c.readMeta(URL1)).toMatchObject({ failures: 1, lastError: { message: 'HTTP 503' } });
    const t = c.touch(URL1, '2026-01-01T02:00:00.000Z', { etag: '"v2"' })!;
    expect(t).toMatchObject({ checkedAt: '2026-01-01T02:00:00.000Z', etag: '"v2"' });
    expect(t.lastError).toBeUndefined();
    expect(t.failures).toBeUndefined();
    c.write(URL1, Buffer.from('b.example\n'), fields, '2026-01-01T03:00:00.000Z');
    expect(readdirSync(c.dir).filter((f) => f.endsWith('.body')).length).toBe(1);
    expect(c.read(URL1)!.bytes.toString()).toBe('b.example\n');
  });

  it('a corrupt record, one of another URL or a body whose digest differs: treated as no copy', () => {
    const dir = tempDir('awg-lc-');
    const c = new ListCache(dir);
    c.write(URL1, Buffer.from('a.example\n'), fields, '2026-01-01T00:00:00.000Z');
    const meta = join(c.dir, `${listKey(URL1)}.json`);
    const good = readFileSync(meta, 'utf8');
    writeFileSync(meta, '{"version": 1, "url": ');
    expect(c.read(URL1)).toBeUndefined();
    expect(c.readMeta(URL1)).toBeUndefined();
    writeFileSync(meta, good.replace(URL1, 'https://other.example/'));
    expect(c.read(URL1)).toBeUndefined();
    writeFileSync(meta, good.replace('"entries": 2', '"entries": -1'));
    expect(c.read(URL1)).toBeUndefined();
    writeFileSync(meta, good);
    expect(c.read(URL1)).toBeDefined();
    const body = readdirSync(c.dir).find((f) => f.endsWith('.body'))!;
    chmodSync(join(c.dir, body), 0o600);
    writeFileSync(join(c.dir, body), 'b.example\n');
    expect(c.read(URL1)).toBeUndefined();
    // a record without a copy is not touched into one
    expect(
      new ListCache(tempDir('awg-lc-')).touch(URL1, '2026-01-01T00:00:00.000Z'),
    ).toBeUndefined();
  });

  it('a crash after the new body and before its record: the old copy is still read', () => {
    const c = new ListCache(tempDir('awg-lc-'));
    c.write(URL1, Buffer.from('a.example\n'), fields, '2026-01-01T00:00:00.000Z');
    // the orphan a crash leaves: a body the record does not name
    writeFileSync(join(c.dir, `${listKey(URL1)}-0123456789abcdef.body`), 'half');
    expect(c.read(URL1)!.bytes.toString()).toBe('a.example\n');
    c.write(URL1, Buffer.from('c.example\n'), fields, '2026-01-01T01:00:00.000Z');
    expect(readdirSync(c.dir).filter((f) => f.endsWith('.body')).length).toBe(1);
  });
});
