import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import type { UrlListCopy } from '../../../src/config/load-destinations.js';

const URL1 = 'https://lists.example/blocked.txt';
const cfg = `version: 1
tunnels:
  vpn:
    type: socks5
    server: 127.0.0.1
    port: 1080
    udp: true
rules:
  - name: only-url
    to:
      lists:
        - {url: "${URL1}", refresh: 1m}
    target: vpn
  - name: mixed
    to:
      cidrs: [192.0.2.0/24]
      lists:
        - {url: "${URL1}"}
    target: vpn
`;

const copy = (text: string, more: Partial<UrlListCopy> = {}): UrlListCopy => ({
  bytes: Buffer.from(text),
  fetchedAt: '2026-01-01T00:00:00.000Z',
  checkedAt: '2026-01-01T01:00:00.000Z',
  ...more,
});

describe('the loader and lists by URL', () => {
  it('no copy: the config loads; the list is pending with a warning; a rule with only such lists is inactive', () => {
    const r = loadConfigText(cfg, 'c.yaml');
    expect(r.config).toBeDefined();
    const warnings = r.issues.filter((i) => i.severity === 'warning').map((i) => i.message);
    expect(warnings).toContain(
      `list ${URL1}: not fetched yet: run \`awg lists update\` or start the daemon`,
    );
    expect(warnings).toContain(
      'rule only-url is inactive (matches no destination) until its lists are fetched',
    );
    // the mixed rule keeps its inline cidrs, and is not called inactive
    expect(warnings.filter((w) => w.includes('mixed'))).toEqual([]);
    expect(r.destinations!.get('only-url')!.v4).toEqual([]);
    expect(r.destinations!.get('mixed')!.v4.length).toBe(1);
    expect(r.urlLists).toEqual([
      expect.objectContaining({
        label: URL1,
        state: 'pending',
        rules: [
          { index: 0, name: 'only-url', path: 'rules[0].to.lists[0]' },
          { index: 1, name: 'mixed', path: 'rules[1].to.lists[0]' },
        ],
      }),
    ]);
  });

  it('a copy: parsed like a file, named by its URL; read once for both rules', () => {
    let reads = 0;
    const r = loadConfigText(cfg, 'c.yaml', {
      urlList: (url) => (
        reads++,
        url === URL1 ? copy('203.0.113.0/24\n198.51.100.7\n') : undefined
      ),
    });
    expect(reads).toBe(1);
    expect(r.issues.filter((i) => i.severity === 'warning')).toEqual([]);
    expect(r.destinations!.get('only-url')!.v4.length).toBe(2);
    expect(r.urlLists![0]).toMatchObject({
      state: 'ok',
      format: 'plain',
      entries: 2,
      fetchedAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it('a copy whose last refresh failed: still used, stale, with a warning naming the failure', () => {
    const r = loadConfigText(cfg, 'c.yaml', {
      urlList: () =>
        copy('203.0.113.0/24\n', {
          lastError: { at: '2026-01-02T00:00:00.000Z', message: 'connection refused' },
        }),
    });
    expect(r.config).toBeDefined();
    expect(r.urlLists![0]).toMatchObject({ state: 'stale', error: 'connection refused' });
    expect(r.destinations!.get('only-url')!.v4.length).toBe(1);
    expect(r.issues.map((i) => i.message)).toContain(
      `list ${URL1}: the last fetch failed (connection refused); the copy of 2026-01-01T00:00:00.000Z stays in use`,
    );
  });

  it('a copy that does not parse never fails the config: the list is pending, a warning says why', () => {
    const r = loadConfigText(cfg, 'c.yaml', { urlList: () => copy('not a domain!\n') });
    expect(r.config).toBeDefined();
    expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(r.urlLists![0]!.state).toBe('pending');
    expect(r.urlLists![0]!.error).toMatch(/its cached copy does not parse \(1 error, first: 1:1/);
    expect(r.destinations!.get('only-url')!.v4).toEqual([]);
  });

  it('a copy with more entries than maxEntries is not used', () => {
    const text = cfg.replace(
      `- {url: "${URL1}", refresh: 1m}`,
      `- {url: "${URL1}", maxEntries: 1}`,
    );
    const r = loadConfigText(text, 'c.yaml', {
      urlList: () => copy('203.0.113.0/24\n198.51.100.7\n'),
    });
    // two entries of the same URL with different options are two lists
    const limited = r.urlLists!.find((l) => l.ref.maxEntries === 1)!;
    expect(limited.state).toBe('pending');
    expect(limited.error).toMatch(/holds 2 entries, more than maxEntries 1/);
  });
});
