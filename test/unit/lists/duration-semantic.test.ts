import { describe, expect, it } from 'vitest';
import { ageOf, formatSpan, parseDuration } from '../../../src/config/duration.js';
import { loadConfigText } from '../../../src/config/load.js';

describe('durations (refresh)', () => {
  it('reads every unit and sums the parts', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('6h')).toBe(21_600_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1d12h')).toBe(129_600_000);
    expect(parseDuration('250ms')).toBe(250);
  });

  it('refuses what is not a duration', () => {
    for (const s of ['', '6', 'h', '1.5h', '1w', '-1m', '1h 30m', '99999999999999999999d'])
      expect(parseDuration(s), s).toBeUndefined();
  });

  it('prints spans with their two largest units', () => {
    expect(formatSpan(41_000)).toBe('41s');
    expect(formatSpan(2 * 3_600_000 + 5 * 60_000 + 7_000)).toBe('2h 5m');
    expect(formatSpan(3 * 86_400_000 + 4 * 3_600_000)).toBe('3d 4h');
    expect(formatSpan(86_400_000 + 30_000)).toBe('1d');
    expect(ageOf('2026-01-01T00:00:00.000Z', Date.parse('2026-01-01T02:00:00Z'))).toBe('2h ago');
    expect(ageOf('garbage')).toBeUndefined();
  });
});

const cfg = (list: string, extra = '') => `version: 1
tunnels:
  vpn:
    type: socks5
    server: 127.0.0.1
    port: 1080
rules:
  - name: blocked
    to:
      lists:
        - ${list}
    target: vpn
${extra}`;

describe('URL list entries: semantic checks, located', () => {
  it('refresh under a minute is an error at the refresh value', () => {
    const r = loadConfigText(cfg('{url: "https://example.org/l.txt", refresh: 30s}'), 'c.yaml');
    const e = r.issues.find((i) => i.severity === 'error');
    expect(e).toMatchObject({ path: 'rules[0].to.lists[0].refresh', line: 11 });
    expect(e!.message).toMatch(/shorter than the minimum of 1m/);
    expect(r.config).toBeUndefined();
  });

  it('a refresh of 1m, 1h30m or the default is accepted', () => {
    for (const ref of [
      '{url: "https://example.org/l.txt", refresh: 1m}',
      '{url: "https://example.org/l.txt", refresh: 1h30m}',
      '{url: "https://example.org/l.txt"}',
    ]) {
      const r = loadConfigText(cfg(ref), 'c.yaml');
      expect(
        r.issues.filter((i) => i.severity === 'error'),
        ref,
      ).toEqual([]);
      expect(r.config, ref).toBeDefined();
    }
  });

  it('a malformed refresh is a schema error', () => {
    const r = loadConfigText(cfg('{url: "https://example.org/l.txt", refresh: 6 hours}'), 'c.yaml');
    expect(r.issues[0]).toMatchObject({ path: 'rules[0].to.lists[0].refresh', severity: 'error' });
  });

  it('via naming no tunnel is an error at the via value; a tunnel is fine', () => {
    const bad = loadConfigText(cfg('{url: "https://example.org/l.txt", via: nope}'), 'c.yaml');
    expect(bad.issues.find((i) => i.severity === 'error')).toMatchObject({
      path: 'rules[0].to.lists[0].via',
      line: 11,
      message: expect.stringMatching(/unknown tunnel "nope" \(known: vpn\)/),
    });
    const ok = loadConfigText(cfg('{url: "https://example.org/l.txt", via: vpn}'), 'c.yaml');
    expect(ok.config).toBeDefined();
  });

  it('plain http without a sha256 pin is a warning; with a pin, none', () => {
    const w = loadConfigText(cfg('{url: "http://example.org/l.txt"}'), 'c.yaml');
    expect(w.config).toBeDefined();
    expect(w.issues.find((i) => i.path === 'rules[0].to.lists[0].url')).toMatchObject({
      severity: 'warning',
      message: expect.stringMatching(/plain http without a `sha256` pin/),
    });
    const pinned = loadConfigText(
      cfg(`{url: "http://example.org/l.txt", sha256: "${'a'.repeat(64)}"}`),
      'c.yaml',
    );
    expect(pinned.issues.filter((i) => i.path === 'rules[0].to.lists[0].url')).toEqual([]);
  });
});
