import { describe, expect, it } from 'vitest';
import { journaldLine, LogReporter, readableLine, syslogPriority } from '../../../src/util/log.js';
import { createLogger } from '../../../src/util/logger.js';
import { eventLevel } from '../../../src/cli/foreground.js';

function sink() {
  const lines: string[] = [];
  return {
    lines,
    to: { write: (l: string) => void lines.push(l) },
    json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('log (pino)', () => {
  it('one JSON object per line with component, pid, ISO time, level and message', () => {
    const s = sink();
    const log = createLogger({ component: 'daemon', to: s.to, env: {} });
    log.info({ tunnel: 'vpn' }, 'handshake');
    const [l] = s.json();
    expect(l).toMatchObject({
      level: 30,
      component: 'daemon',
      pid: process.pid,
      tunnel: 'vpn',
      msg: 'handshake',
    });
    expect(String(l!.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('level from $AWG_LOG_LEVEL; debug hidden at info', () => {
    const s = sink();
    createLogger({ component: 'x', to: s.to, env: {} }).debug('hidden');
    createLogger({ component: 'x', to: s.to, env: { AWG_LOG_LEVEL: 'debug' } }).debug('shown');
    createLogger({ component: 'x', to: s.to, env: { AWG_LOG_LEVEL: 'nonsense' } }).debug(
      'hidden too',
    );
    expect(s.json().map((l) => l.msg)).toEqual(['shown']);
  });

  it('secrets are redacted even when a caller passes them', () => {
    const s = sink();
    const log = createLogger({ component: 'engine', to: s.to, env: {} });
    log.info(
      { privateKey: 'c2VjcmV0', auth: { password: 'hunter2' }, peer: { presharedKey: 'cHNr' } },
      'configured',
    );
    const text = s.lines.join('');
    expect(text).not.toMatch(/c2VjcmV0|hunter2|cHNr/);
    expect(text).toContain('[secret]');
  });

  it('journald: syslog priority prefixes from the pino level', () => {
    expect([10, 20, 30, 40, 50, 60].map(syslogPriority)).toEqual([7, 7, 6, 4, 3, 2]);
    expect(journaldLine('{"level":50,"msg":"x"}\n')).toBe('<3>{"level":50,"msg":"x"}\n');
    expect(journaldLine('{"level":40}\n')).toBe('<4>{"level":40}\n');
  });

  it('an engine log tail reads as level and message in an error', () => {
    expect(
      readableLine(
        '{"level":40,"time":"t","component":"engine","msg":"proxy 10.0.0.1:1080 down: auth"}',
      ),
    ).toBe('warn proxy 10.0.0.1:1080 down: auth');
    expect(readableLine('plain text')).toBe('plain text');
  });

  it('the mutation log and warnings of a reconcile become log lines', () => {
    const s = sink();
    const r = new LogReporter(createLogger({ component: 'daemon', to: s.to, env: {} }));
    r.report({ type: 'mutation', command: 'nft -f -' });
    r.report({ type: 'warning', message: 'careful' });
    r.report({ type: 'phase', phase: 'apply' });
    expect(s.json().map((l) => [l.level, l.msg, l.mutation])).toEqual([
      [30, '[#] nft -f -', 'nft -f -'],
      [40, 'careful', undefined],
    ]);
  });

  it('event levels: errors are errors, drift and a tunnel going down are warnings', () => {
    const at = '2026-01-01T00:00:00.000Z';
    expect(eventLevel({ type: 'error', at, kind: 'driver', message: 'x' })).toBe('error');
    expect(eventLevel({ type: 'drift', at, ids: ['a'], repaired: true })).toBe('warn');
    expect(eventLevel({ type: 'tunnel', at, tunnel: 't', state: 'down' })).toBe('warn');
    expect(eventLevel({ type: 'tunnel', at, tunnel: 't', state: 'up' })).toBe('info');
    expect(eventLevel({ type: 'handshake', at, tunnel: 't', peer: 'p' })).toBe('info');
  });
});
