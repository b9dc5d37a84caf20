/**
 * The text list formats (src/config/list-formats/): dnsmasq lines and sing-box source
 * rule-sets (JSON) against the published samples (test/fixtures/lists/) and hostile input,
 * and what detection picks for each sample.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dnsmasqReader } from '../../../src/config/list-formats/dnsmasq.js';
import { detectListFormat, parseListBytes } from '../../../src/config/list-formats/index.js';
import { singBoxReader } from '../../../src/config/list-formats/sing-box.js';
import { REPO_ROOT } from '../../helpers/awg.js';
import { readWith } from '../../helpers/list-sink.js';

const sample = (p: string) => readFileSync(join(REPO_ROOT, 'test/fixtures/lists', p));

describe('detection', () => {
  it('picks each sample’s format; plain is the fallback', () => {
    const cases: [string, string][] = [
      ['plain/refilter-domains_all.head200.lst', 'plain'],
      ['plain/refilter-ipsum.head200.lst', 'plain'],
      ['dnsmasq/itdoginfo-inside-dnsmasq-nfset.head200.lst', 'dnsmasq'],
      ['dnsmasq/itdoginfo-inside-dnsmasq-ipset.head50.lst', 'dnsmasq'],
      ['sing-box/vernette-telegram.json', 'sing-box'],
      ['sing-box/vernette-discord-full.json', 'sing-box'],
      ['srs/vernette-telegram.srs', 'srs'],
      ['srs/sing-geoip-ad.srs', 'srs'],
      ['geosite/v2fly-dlc-excerpt.dat', 'geosite'],
      ['geoip/v2fly-geoip-ad-private.dat', 'geoip'],
    ];
    for (const [f, fmt] of cases) expect([f, detectListFormat(sample(f))]).toEqual([f, fmt]);
  });

  it('dnsmasq after comments; a plain list with comments, a JSON array, an empty file stay plain', () => {
    expect(detectListFormat(Buffer.from('# list\n\nserver=/a.com/1.1.1.1\n'))).toBe('dnsmasq');
    expect(detectListFormat(Buffer.from('\n# a list\nexample.org\n'))).toBe('plain');
    expect(detectListFormat(Buffer.from('["a"]'))).toBe('plain');
    expect(detectListFormat(Buffer.from(''))).toBe('plain');
  });

  it('the Re:filter samples read as plain lists without an issue (LF, no header)', () => {
    const d = parseListBytes(sample('plain/refilter-domains_all.head200.lst'), 'd.lst');
    expect(d.issues).toEqual([]);
    expect(d.set.counts.entries).toBe(200);
    expect([...d.set.domains.names('domain')]).toContain('0.nb-novorossiysk.net');
    const ip = parseListBytes(sample('plain/refilter-ipsum.head200.lst'), 'i.lst');
    expect(ip.issues).toEqual([]);
    expect(ip.set.counts.cidrs4).toBe(200);
    expect(ip.set.v4.some((i) => i.start === 0xbca6eeaa)).toBe(true); // 188.166.238.170/32
  });

  it('CRLF plain lists read (the plain path trims every line)', () => {
    const r = parseListBytes(Buffer.from('example.org\r\n203.0.113.0/24\r\n'), 'crlf.lst');
    expect(r.issues).toEqual([]);
    expect([...r.set.domains.names('domain')]).toEqual(['example.org']);
  });
});

describe('dnsmasq', () => {
  it('itdoginfo nftset sample: every line one domain entry, `.ua` as the zone ua', () => {
    const r = readWith(dnsmasqReader, sample('dnsmasq/itdoginfo-inside-dnsmasq-nfset.head200.lst'));
    expect(r.problems).toEqual([]);
    expect(r.kinds).toEqual({ domain: 200 });
    expect(r.entries[0]).toEqual({ kind: 'domain', value: 'ua', at: { line: 1, col: 9 } });
    expect(r.values('domain')).toContain('10minutemail.com');
    const ipset = readWith(
      dnsmasqReader,
      sample('dnsmasq/itdoginfo-inside-dnsmasq-ipset.head50.lst'),
    );
    expect(ipset.kinds).toEqual({ domain: 50 });
    expect(ipset.values('domain').slice(0, 3)).toEqual(r.values('domain').slice(0, 3));
  });

  it('several domains a line, at their columns; the target after the last / is not read', () => {
    const r = readWith(
      dnsmasqReader,
      'server=/a.example/b.example/127.0.0.1#5353\n  local=/c.example/\naddress=/d.example/0.0.0.0\n',
    );
    expect(r.problems).toEqual([]);
    expect(r.entries.map((e) => [e.value, e.at.line, e.at.col])).toEqual([
      ['a.example', 1, 9],
      ['b.example', 1, 19],
      ['c.example', 2, 10],
      ['d.example', 3, 10],
    ]);
  });

  it('*.d is the names under d; *d (any ending), #, // and includes are refused where they are', () => {
    const r = readWith(
      dnsmasqReader,
      [
        'server=/*.a.example/1.1.1.1',
        'server=/*google.com/1.1.1.1',
        'address=/#/0.0.0.0',
        'server=//10.0.0.1',
        'conf-file=/etc/more.conf',
        'server=/b.example',
      ].join('\n'),
    );
    expect(r.entries).toEqual([{ kind: 'wildcard', value: 'a.example', at: { line: 1, col: 9 } }]);
    expect(r.errors).toEqual([
      expect.stringMatching(
        /^2:9: \*google\.com: dnsmasq matches any name ending in "google\.com"/,
      ),
      expect.stringMatching(/^3:10: address=\/#\/: '#' is every domain/),
      expect.stringMatching(/^4:9: server: an empty domain/),
      expect.stringMatching(/^5:1: conf-file= includes configuration from elsewhere/),
      expect.stringMatching(/^6:8: server=\/b\.example: the domain list is not closed/),
    ]);
  });

  it('other options: one warning each, at the first line, with the count; not options: errors', () => {
    const r = readWith(
      dnsmasqReader,
      '# upstreams\nno-resolv\nserver=1.1.1.1\nserver=8.8.8.8 # second\nno-resolv\nexample.org\nserver=/ok.example/#\n',
    );
    expect(r.values('domain')).toEqual(['ok.example']);
    expect(r.warnings).toEqual([
      '2:1: no-resolv (2 lines): names no destination; ignored',
      '3:1: server (2 lines): names no destination; ignored',
    ]);
    expect(r.errors).toEqual([
      '6:1: "example.org" is not a dnsmasq option line (option or option=value)',
    ]);
  });

  it('warnings are bounded: 20 option names one by one, the rest in one count', () => {
    const text = Array.from({ length: 5000 }, (_, i) => `opt-${i}=x`).join('\n');
    const r = readWith(dnsmasqReader, text);
    expect(r.warnings).toHaveLength(21);
    expect(r.warnings.at(-1)).toBe(
      '1:1: 4980 more lines of other options name no destination; ignored',
    );
  });

  it('CRLF, a byte-order mark and trailing comments', () => {
    const r = readWith(dnsmasqReader, '\uFEFFipset=/a.example/s # note\r\nipset=/b.example/s\r\n');
    expect(r.problems).toEqual([]);
    expect(r.values('domain')).toEqual(['a.example', 'b.example']);
  });

  it('past maxEntries: one error and the reader stops', () => {
    const text = Array.from({ length: 50 }, (_, i) => `server=/d${i}.example/1.1.1.1`).join('\n');
    const r = readWith(dnsmasqReader, text, { maxEntries: 10 });
    expect(r.entries.length).toBe(10);
    expect(r.errors).toEqual([expect.stringMatching(/^11:9: more than 10 entries/)]);
  });

  it('through parseListBytes: the domains are a rule’s names, a bad one at file:line:col', () => {
    const r = parseListBytes(
      Buffer.from('server=/a.example/1.1.1.1\nserver=/.x/1.1.1.1\n'),
      'l.conf',
    );
    expect(r.format).toBe('dnsmasq');
    expect([...r.set.domains.names('domain')].sort()).toEqual(['a.example', 'x']);
    expect(r.issues).toEqual([]);
    const bad = parseListBytes(Buffer.from('server=/a..b/1.1.1.1\n'), 'l.conf');
    expect(bad.issues.map((i) => [i.line, i.col, i.severity])).toEqual([[1, 9, 'error']]);
  });
});

describe('sing-box source rule-set', () => {
  it('vernette telegram.json: domain_suffix as domains, ip_cidr as addresses', () => {
    const r = readWith(singBoxReader, sample('sing-box/vernette-telegram.json'));
    expect(r.problems).toEqual([]);
    expect(r.kinds).toEqual({ domain: 2, address: 9 });
    expect(r.entries[0]).toEqual({ kind: 'domain', value: 't.me', at: { line: 6, col: 9 } });
    expect(r.values('address')).toContain('149.154.160.0/20');
  });

  it('vernette discord-full.json: the rule that also needs network and port_range is refused there', () => {
    const r = readWith(singBoxReader, sample('sing-box/vernette-discord-full.json'));
    expect(r.errors).toEqual([
      expect.stringMatching(/^15:7: network: the rule also depends on the network/),
      expect.stringMatching(/^31:7: port_range: the rule also depends on the destination port/),
    ]);
    expect(r.kinds.domain).toBe(6);
  });

  it('domain → full, .suffix → wildcard, keyword, regex; a single string or an array', () => {
    const r = readWith(
      singBoxReader,
      JSON.stringify({
        version: 3,
        rules: [
          {
            domain: 'exact.example',
            domain_suffix: ['.under.example', 'both.example'],
            domain_keyword: 'kw',
            domain_regex: ['^a\\.'],
            port: [],
            network_is_expensive: false,
            invert: false,
            type: 'default',
          },
        ],
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.entries.map((e) => [e.kind, e.value])).toEqual([
      ['full', 'exact.example'],
      ['wildcard', 'under.example'],
      ['domain', 'both.example'],
      ['keyword', 'kw'],
      ['regex', '^a\\.'],
    ]);
  });

  it('logical rules, invert, unknown fields, empty values, wrong types: errors at the member', () => {
    const text = `{
  "version": 2,
  "rules": [
    {"type": "logical", "mode": "and", "rules": [{"domain": "x.example"}]},
    {"domain": "a.example", "invert": true},
    {"domain": "b.example", "process_name": "curl", "colour": 1},
    {"domain": ["", 5]},
    {"mode": "or"},
    "not a rule"
  ],
  "extra": true
}`;
    const r = readWith(singBoxReader, text);
    expect(r.errors).toEqual([
      '4:6: a logical rule (and/or of rules) cannot be read as a list of destinations',
      '5:29: invert: a rule that matches what it does not name cannot be a list of destinations',
      expect.stringMatching(/^6:29: process_name: the rule also depends on the process/),
      '6:53: unknown field "colour" in a rule',
      '7:17: domain: an empty value (sing-box refuses it)',
      '7:21: domain: values must be strings',
      '8:6: mode and rules belong to a logical rule (type: logical)',
      '9:5: a rule must be an object',
      '11:3: unknown field "extra" in a rule-set',
    ]);
  });

  it('version: required, and one of 1–4', () => {
    expect(readWith(singBoxReader, '{"rules": []}').errors).toEqual([
      '1:1: the rule-set has no "version" (sing-box requires it)',
    ]);
    expect(readWith(singBoxReader, '{"version": 9, "rules": []}').errors).toEqual([
      '1:2: version 9: this reader knows rule-set versions 1, 2, 3, 4',
    ]);
  });

  it('broken JSON: one error where it breaks, nothing thrown', () => {
    const cases: [string, string][] = [
      [
        '{"version": 2, "rules": [{"domain": "a.example"',
        '1:48: not valid JSON: unexpected end of the JSON text',
      ],
      ['{"version": 2,\n "rules": [}', '2:12: not valid JSON: unexpected "}"'],
      ['{"version": 2, "rules": [{"domain": "\\q"}]}', '1:38: not valid JSON: a bad escape \\q'],
      ['{"version": 2} trailing', '1:16: not valid JSON: text after the end of the JSON value'],
      [
        '{"a\nb": 1}',
        '1:4: not valid JSON: a control character inside a string (write it escaped)',
      ],
    ];
    for (const [text, err] of cases) expect(readWith(singBoxReader, text).errors).toEqual([err]);
  });

  it('nesting is bounded: 100,000 brackets deep is one error, not a stack overflow', () => {
    const deep = `{"version": 2, "rules": [{"rules": ${'['.repeat(100_000)}`;
    const r = readWith(singBoxReader, deep);
    expect(r.errors).toEqual([expect.stringMatching(/nested deeper than 64 levels/)]);
  });

  it('through parseListBytes: a bad ip_cidr is refused at its string', () => {
    const r = parseListBytes(
      Buffer.from('{"version": 2,\n "rules": [{"ip_cidr": ["203.0.113.1/24"]}]}'),
      'rs.json',
    );
    expect(r.format).toBe('sing-box');
    expect(r.issues.map((i) => `${i.line}:${i.col} ${i.message}`)).toEqual([
      '2:25 203.0.113.1/24 has host bits set; it means 203.0.113.0/24',
    ]);
  });
});
