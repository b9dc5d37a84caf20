/**
 * Untrusted strings on their way to a terminal or a log: the helper itself, and the places
 * that print them (CLI errors and warnings, the daemon's status view, events, log lines read
 * back, a proxy's reason phrase).
 */
/* eslint-disable no-control-regex -- the assertions look for control characters */
import { describe, expect, it } from 'vitest';
import { printError, TextReporter, type Io } from '../../../src/cli/output.js';
import { renderDaemonStatus, statusHeadline } from '../../../src/cli/commands/status.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import type { StatusResponse } from '../../../src/daemon/core.js';
import { AwgError } from '../../../src/errors.js';
import { connectError, parseConnectResponse } from '../../../src/proxy/http-connect.js';
import { readableLine } from '../../../src/util/log.js';
import { safeLine, safeText } from '../../../src/util/sanitize.js';

/** no ESC, no C0 but \n, no DEL/C1, no bidi/format characters */
const UNSAFE =
  /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/;

const HOSTILE = [
  '\x1b[2J\x1b[H', // clear the screen
  '\x1b]0;owned\x07', // set the window title
  '\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\', // hyperlink
  '\x1bP+q544e\x1b\\', // DCS (terminal query)
  '\x9b31m', // 8-bit CSI
  'ok\rFAKE', // carriage return: overwrite the line
  'a\nwarn injected line', // a second log line
  'evil\u202egnp.exe', // bidi override
  '\x00\x07\x08\x7f',
  '\x1b', // lone ESC at the end
  '\x1b[31', // unterminated CSI
];

describe('safeLine / safeText', () => {
  it('removes escape sequences and escapes every other control character', () => {
    expect(safeLine('\x1b[31mred\x1b[0m text')).toBe('red text');
    expect(safeLine('\x1b]0;owned\x07title')).toBe('title');
    expect(safeLine('a\nb\tc\rd')).toBe('a\\nb\\tc\\rd');
    expect(safeLine('\x00\x7f\x85')).toBe('\\x00\\x7f\\x85');
    expect(safeLine('evil\u202egnp.exe')).toBe('evil\\u{202e}gnp.exe');
    expect(safeText('line 1\nline 2\tx\r')).toBe('line 1\nline 2\tx\\r');
    for (const h of HOSTILE) {
      expect(safeLine(h)).not.toMatch(UNSAFE);
      expect(safeLine(h)).not.toContain('\n');
      expect(safeText(h)).not.toMatch(UNSAFE);
    }
  });
  it('keeps printable text, non-ASCII included, and cuts to a length', () => {
    expect(safeLine('Proxy Authentication Required — Zugriff verweigert ✓')).toBe(
      'Proxy Authentication Required — Zugriff verweigert ✓',
    );
    expect(safeLine('x'.repeat(10), 5)).toBe('xxxx…');
  });
});

function io(): Io & { text: () => string } {
  let s = '';
  return { out: (x) => (s += x), err: (x) => (s += x), colour: false, text: () => s };
}

describe('where untrusted text is printed', () => {
  const evil = 'Forbidden\x1b[2J\x1b]0;pwned\x07\nawg: error [bug]: fake';

  it('CLI errors, issues and warnings', () => {
    const o = io();
    printError(
      o,
      new AwgError('driver', `proxy said: ${evil}`, {
        hint: `try ${evil}`,
        issues: [{ file: 'c.yaml', path: 'tunnels.x', message: evil, severity: 'error' }],
      }),
    );
    new TextReporter(o, true).report({ type: 'warning', message: evil });
    new TextReporter(o, true).report({ type: 'mutation', command: `ip route add ${evil}` });
    expect(o.text()).not.toMatch(/\x1b|\x07/);
    // a message's own newlines stay (a tool's stderr quoted in it), but what follows is indented: no forged line
    const lines = o.text().split('\n');
    expect(lines.filter((l) => l.startsWith('awg: error'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('awg: error [bug]'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('  awg: error [bug]: fake'))).toHaveLength(4);
  });

  it("the daemon's status view and events", () => {
    const s: StatusResponse = {
      state: 'converged',
      configPath: `/etc/awg/${evil}.yaml`,
      objects: [{ kind: 'engine', id: `engine/${evil}` }],
      tunnels: [
        {
          name: 'px',
          type: 'http',
          health: 'down',
          error: `HTTP proxy 10.0.0.1:8080 forbids CONNECT (403 ${evil})`,
          up: false,
          rxBytes: 0,
          txBytes: 0,
          peers: [{ publicKey: 'k', endpoint: `${evil}:51820`, rxBytes: 0, txBytes: 0 }],
        },
      ],
    } as unknown as StatusResponse;
    const text = renderDaemonStatus(s);
    expect(text).not.toMatch(UNSAFE);
    expect(text.split('\n').filter((l) => l.startsWith('awg: error'))).toEqual([]);
    expect(statusHeadline(s)).not.toMatch(/[\x00-\x1f]/);
    const ev = formatEvent({ type: 'error', at: 't', kind: 'driver', message: evil } as Parameters<
      typeof formatEvent
    >[0]);
    expect(ev).not.toMatch(/[\x00-\x1f]/);
    expect(ev).toContain('Forbidden');
  });

  it('a log line read back', () => {
    const line = JSON.stringify({ level: 40, msg: `proxy down: ${evil}` });
    expect(readableLine(line)).not.toMatch(/[\x00-\x1f]/);
    expect(readableLine(`not json ${evil}`)).not.toMatch(/[\x00-\x1f]/);
  });

  it("a proxy's reason phrase is made safe where it is parsed", () => {
    const r = parseConnectResponse(
      `HTTP/1.1 403 ${'\x1b]0;pwned\x07'}Forbidden\x1b[5m${'x'.repeat(500)}`,
    );
    expect(r.status).toBe(403);
    expect(r.reason).not.toMatch(UNSAFE);
    expect(r.reason.length).toBeLessThanOrEqual(120);
    expect(r.reason.startsWith('Forbidden')).toBe(true);
    expect(connectError(r, 'p:1', { host: 'h', port: 1 }).message).not.toMatch(UNSAFE);
  });
});
