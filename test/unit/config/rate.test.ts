/** The rate grammar of `limit:` and the semantic checks of limits, located like every config issue. */
import { describe, expect, it } from 'vitest';
import { formatRate, parseRate, roundRate } from '../../../src/config/rate.js';
import { loadConfigText } from '../../../src/config/load.js';
import { formatIssue } from '../../../src/errors.js';

const bits = (s: string) => {
  const r = parseRate(s);
  return r.ok ? r.bits : r.error;
};

describe('rates', () => {
  it('bits (×1000, any case of the prefix) and bytes per second (×8)', () => {
    expect(bits('20Mbit')).toBe(20_000_000);
    expect(bits('20mbit')).toBe(20_000_000);
    expect(bits('500kbit')).toBe(500_000);
    expect(bits('1.5Gbit')).toBe(1_500_000_000);
    expect(bits('8000bit')).toBe(8000);
    expect(bits('20Mbps')).toBe(20_000_000);
    expect(bits('2MB/s')).toBe(16_000_000);
    expect(bits('125kB/s')).toBe(1_000_000);
    expect(bits('100 Mbit')).toBe(100_000_000);
  });

  it('refuses what is not a rate, or outside 8 kbit … 100 Gbit', () => {
    expect(bits('20')).toMatch(/not a rate/);
    expect(bits('20MB')).toMatch(/not a rate/);
    expect(bits('fast')).toMatch(/not a rate/);
    expect(bits('-1Mbit')).toMatch(/not a rate/);
    expect(bits('1kbit')).toBe('1kbit is 1kbit; a limit must be between 8kbit and 100Gbit');
    expect(bits('101Gbit')).toMatch(/between 8kbit and 100Gbit/);
  });

  it('kept to whole bytes and six significant digits (what tc prints back exactly)', () => {
    expect(roundRate(1_234_567)).toBe(1_235_000);
    expect(roundRate(123_457)).toBe(123_456);
    expect(roundRate(1_234_567_890)).toBe(1_235_000_000);
    expect(roundRate(20_000_000)).toBe(20_000_000);
    expect(formatRate(1_235_000)).toBe('1235kbit');
    expect(formatRate(20_000_000)).toBe('20Mbit');
  });
});

describe('limits in a config', () => {
  const KEY = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';
  it('errors at file:line:col: a bad rate, a limit on block/drop, a listen port in the NAT range, a proxy', () => {
    const text = `version: 1
tunnels:
  t:
    type: wireguard
    privateKey: { file: t.key }
    addresses: [10.0.0.2/32]
    listenPort: 61500
    peers: [{ publicKey: ${KEY}, allowedIPs: [0.0.0.0/0] }]
  p:
    type: socks5
    server: 192.0.2.1
    limit: { upload: 1Mbit }
rules:
  - { name: a, match: { name: a }, target: t, limit: { upload: 20Mbit, download: 50Mbit } }
  - { name: b, match: { name: b }, target: block, limit: { upload: 1Mbit } }
  - { name: c, match: { name: c }, target: t, fallback: drop, limit: { upload: 1Mbit } }
  - { name: d, match: { name: d }, target: p, limit: { upload: 1Mbit } }
`;
    const r = loadConfigText(text, 'c.yaml');
    expect(r.issues.map(formatIssue)).toEqual([
      'c.yaml:7:17: tunnels.t.listenPort: listen port 61500 lies in 61440-65535, the ports limited connections are given; with limits, pick a port outside it',
      'c.yaml:12:12: tunnels.p.limit: limits are not supported yet for socks5 tunnels',
      'c.yaml:15:58: rules[1].limit: a rule with target "block" sends nothing; remove its limit',
      'c.yaml:16:70: rules[2].limit: a rule with fallback "drop" sends nothing; remove its limit',
      "c.yaml:17:44: warning: rules[3].target: SOCKS5 without udp: true carries TCP only: this rule's UDP is dropped (fallback block)",
      'c.yaml:17:54: rules[3].limit: limits are not supported yet for rules through a proxy tunnel ("p" is socks5)',
    ]);
  });

  it('a limit needs upload or download; a bad rate is located at it', () => {
    const r = loadConfigText(
      `version: 1\nrules:\n  - { match: { name: a }, target: direct, limit: {} }\n  - { match: { name: b }, target: direct, limit: { upload: 20MB } }\n`,
      'c.yaml',
    );
    expect(r.issues.map(formatIssue)).toEqual([
      'c.yaml:3:50: rules[0].limit: a limit needs `upload`, `download` or both',
      'c.yaml:4:60: rules[1].limit.upload: "20MB" is not a rate: write a number and a unit, e.g. 20Mbit, 500kbit, 1.5Gbit or 2MB/s',
    ]);
  });

  it('at most 32 rules with a limit', () => {
    const rules = Array.from(
      { length: 33 },
      (_, i) =>
        `  - { name: r${i}, match: { name: r${i} }, target: direct, limit: { upload: 1Mbit } }`,
    ).join('\n');
    const r = loadConfigText(`version: 1\nrules:\n${rules}\n`, 'c.yaml');
    expect(r.issues.map(formatIssue)).toEqual([
      'c.yaml:35:63: rules[32].limit: at most 32 rules can have a limit (this is number 33); runtime limits (awg limit) share these 32 classes',
    ]);
  });
});
