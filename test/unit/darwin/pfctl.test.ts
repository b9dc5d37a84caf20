import { describe, expect, it } from 'vitest';
import {
  parsePfAnchors,
  parsePfEnable,
  parsePfFlush,
  parsePfInfo,
  parsePfLoad,
  parsePfReferences,
  parsePfRelease,
  parsePfRules,
  parsePfSections,
  pfLines,
} from '../../../src/platform/darwin/pfctl.js';
import { fixture, sections } from './fixtures.js';

describe('pfctl parsers', () => {
  it('-sr before/after third-party anchors (Sequoia 15.0), ALTQ noise stripped', () => {
    const before = parsePfRules(fixture('pf/pfctl-sr-sequoia-15.0-before-sshuttle.txt'));
    expect(before.rules).toEqual([
      'scrub-anchor "com.apple/*" all fragment reassemble',
      'scrub-anchor "com.apple.internet-sharing" all fragment reassemble',
      'anchor "com.apple/*" all',
      'anchor "com.apple.internet-sharing" all',
    ]);
    const after = parsePfRules(fixture('pf/pfctl-sr-sequoia-15.0-after-sshuttle.txt'));
    expect(after.anchors.filter((a) => a.kind === 'anchor').map((a) => a.name)).toEqual([
      'com.apple/*',
      'com.apple.internet-sharing',
      'sshuttle6-12300',
      'sshuttle-12300',
    ]);
    expect(after.anchors.filter((a) => a.kind === 'scrub-anchor')).toHaveLength(2);
  });

  it('stock -s rules', () => {
    expect(
      parsePfRules(fixture('pf/pfctl-s-rules-default-apple-stackexchange.txt')).anchors,
    ).toEqual([
      {
        kind: 'scrub-anchor',
        name: 'com.apple/*',
        rule: 'scrub-anchor "com.apple/*" all fragment reassemble',
      },
      { kind: 'anchor', name: 'com.apple/*', rule: 'anchor "com.apple/*" all' },
    ]);
  });

  it('-s all sections and status', () => {
    const t = fixture('pf/pfctl-s-all-corporate-vpn-sshuttle-TRUNCATED.txt');
    const s = parsePfSections(t);
    expect([...s.keys()]).toEqual([
      'TRANSLATION RULES',
      'FILTER RULES',
      'DUMMYNET RULES',
      'STATES',
      'INFO',
    ]);
    expect(
      parsePfRules(s.get('TRANSLATION RULES')!.join('\n')).anchors.map(
        (a) => `${a.kind} ${a.name}`,
      ),
    ).toEqual([
      'nat-anchor com.apple/*',
      'rdr-anchor com.apple/*',
      'rdr-anchor sshuttle6-12300',
      'rdr-anchor sshuttle-12300',
    ]);
    expect(s.get('STATES')).toHaveLength(4);
    expect(parsePfInfo(t)).toEqual({ enabled: true, since: 460, debug: 'Urgent', states: 4 });
    const sa = fixture('pf/pfctl-sa-disabled-openvpn-2016-sshuttle-TRUNCATED.txt');
    expect(parsePfInfo(sa)).toEqual({ enabled: false, since: 5568, debug: 'Urgent', states: 0 });
    expect(parsePfSections(sa).get('FILTER RULES')).toEqual([
      'pass on lo all flags S/SA keep state',
      'anchor "sshuttle" all',
    ]);
  });

  it('-s info on macOS 26: bare Disabled, Enabled for 0s', () => {
    expect(parsePfInfo(fixture('pf/pfctl-s-info-disabled-macos26.txt'))).toEqual({
      enabled: false,
      debug: 'Urgent',
      states: 0,
    });
    expect(parsePfInfo(fixture('pf/pfctl-s-info-enabled-macos26.txt'))).toEqual({
      enabled: true,
      since: 0,
      debug: 'Urgent',
      states: 0,
    });
    expect(parsePfInfo('')).toBeUndefined();
  });

  it('-s References: none, one, two (newest first), Yosemite paste without TOKENS:', () => {
    expect(parsePfReferences(fixture('pf/pfctl-s-References-none-macos26.txt'))).toEqual([]);
    expect(parsePfReferences(fixture('pf/pfctl-s-References-one-macos26.txt'))).toEqual([
      { pid: 4063, process: 'pfctl', token: '15053025338191571182', age: 0 },
    ]);
    expect(
      parsePfReferences(fixture('pf/pfctl-s-References-two-macos26.txt')).map((r) => r.token),
    ).toEqual(['9084387343160548126', '15053025338191571182']);
    expect(parsePfReferences(fixture('pf/pfctl-s-Reference-yosemite-sshuttle.txt'))).toEqual([
      { pid: 5191, process: 'pfctl', token: '10051342025653898869', age: 7 },
    ]);
  });

  it('-E token (u64 kept exact) with and without ALTQ lines; -e already enabled', () => {
    const x = sections('pf/pfctl-E-X-streams-exitcodes-macos26.txt');
    expect(parsePfEnable(x.get('pfctl -E            exit 0')!.stderr)).toEqual({
      status: 'enabled',
      token: '11012949885072952621',
    });
    expect(parsePfEnable(fixture('pf/pfctl-E-token-sonoma-14.1.1-sshuttle.txt'))).toEqual({
      status: 'enabled',
      token: '4235676552202453487',
    });
    expect(parsePfEnable(fixture('pf/pfctl-e-already-enabled-10.11.3-pow.txt'))).toEqual({
      status: 'already-enabled',
    });
    expect(parsePfEnable(fixture('pf/pfctl-e-already-enabled-10.13.3-bettercap.txt'))).toEqual({
      status: 'already-enabled',
    });
    expect(parsePfEnable('pfctl: DIOCSTARTREF: Permission denied\n')).toMatchObject({
      status: 'error',
    });
  });

  it('-X results: every captured case', () => {
    const x = sections('pf/pfctl-E-X-streams-exitcodes-macos26.txt');
    const byStart = (p: string) => [...x.entries()].find(([k]) => k.startsWith(p))![1].stderr;
    expect(parsePfRelease(byStart('pfctl -X <stale token>   while pf DISABLED'))).toEqual({
      status: 'not-enabled',
    });
    expect(parsePfRelease(byStart('pfctl -X <stale token>   while pf ENABLED'))).toEqual({
      status: 'token-invalid',
    });
    expect(parsePfRelease(byStart('pfctl -X <valid token>   last reference'))).toEqual({
      status: 'disabled',
    });
    expect(parsePfRelease(byStart('pfctl -X <valid token>   other references'))).toEqual({
      status: 'released',
      remaining: 1,
    });
    for (const v of x.values()) expect(v.stdout.trim()).toBe('');
  });

  it('-f: syntax errors with line numbers; plain warning is a success', () => {
    expect(parsePfLoad(fixture('pf/pfctl-f-syntax-error-11.4-mitmproxy.txt'))).toEqual({
      loaded: false,
      errors: [{ file: 'pf.conf', line: 17, message: 'syntax error' }],
      messages: ['pfctl: Syntax error in config file: pf rules not loaded'],
    });
    expect(parsePfLoad(fixture('pf/pfctl-f-syntax-error-10.13.4-mitmproxy.txt'))).toEqual({
      loaded: false,
      errors: [{ file: 'pf.conf', line: 1, message: 'syntax error' }],
      messages: [],
    });
    const ks = parsePfLoad(fixture('pf/pfctl-Fa-f-e-syntax-error-bigsur-11.0.1-killswitch.txt'));
    expect(ks.loaded).toBe(false);
    expect(ks.errors).toEqual([{ file: 'killswitch.pf.conf', line: 31, message: 'syntax error' }]);
    expect(parsePfLoad(fixture('pf/pfctl-f-warning-10.11.3-pow.txt'))).toEqual({
      loaded: true,
      errors: [],
      messages: [],
    });
    expect(pfLines(fixture('pf/pfctl-f-warning-10.11.3-pow.txt'))).toEqual([]);
  });

  it('-F all confirmations', () => {
    expect(parsePfFlush(fixture('pf/pfctl-F-all-yosemite-ettercap.txt'))).toEqual({
      cleared: [
        'rules',
        'nat',
        'dummynet',
        'source tracking entries',
        'statistics',
        'interface flags',
      ],
      tablesDeleted: 0,
      statesCleared: 0,
    });
    expect(parsePfFlush('3 states cleared\n').statesCleared).toBe(3);
  });

  it('-s Anchors: one path per line (format not captured; see INDEX known gaps)', () => {
    expect(
      parsePfAnchors(
        'No ALTQ support in kernel\nALTQ related functions disabled\n  com.awg/killswitch\n  com.awg/dns\n',
      ),
    ).toEqual(['com.awg/killswitch', 'com.awg/dns']);
    expect(parsePfAnchors('pfctl: DIOCGETRULES: Invalid argument\n')).toEqual([]);
  });
  it('a failed ioctl is a failed load (pfctl err()s: DIOCXCOMMIT, DIOCBEGIN)', () => {
    const r = parsePfLoad(
      'No ALTQ support in kernel\nALTQ related functions disabled\npfctl: DIOCXCOMMIT: Device busy\n',
    );
    expect(r.loaded).toBe(false);
    expect(r.messages).toEqual(['pfctl: DIOCXCOMMIT: Device busy']);
    expect(parsePfLoad('pfctl: Use of -f option, could result in flushing of rules\n').loaded).toBe(
      true,
    );
  });
});
