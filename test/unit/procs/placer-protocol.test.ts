/** `awg placer` without a kernel: the line framing and the validation of its messages. */
import { describe, expect, it } from 'vitest';
import {
  LineDecoder,
  encode,
  parseFromPlacer,
  parseToPlacer,
  zeroStats,
  type ToPlacer,
} from '../../../src/procs/placer-protocol.js';
import { MOUNT, WORK } from './placer-fixtures.js';

describe('placer protocol framing', () => {
  it('splits lines across chunks, keeps split UTF-8 characters, skips blank lines', () => {
    const lines: string[] = [];
    const d = new LineDecoder((l) => lines.push(l));
    const bytes = Buffer.from('{"a":"ü"}\n\n{"b":1}\n{"c"', 'utf8');
    const cut = bytes.indexOf(0xc3) + 1; // inside the two bytes of ü
    d.push(bytes.subarray(0, cut));
    expect(lines).toEqual([]);
    d.push(bytes.subarray(cut));
    expect(lines).toEqual(['{"a":"ü"}', '{"b":1}']);
    expect(d.rest()).toBe('{"c"');
    d.push(':2}\n');
    expect(lines.at(-1)).toBe('{"c":2}');
  });

  it('drops an overlong line (also one that grows without a newline) and resumes after it', () => {
    const lines: string[] = [];
    const long: number[] = [];
    const d = new LineDecoder(
      (l) => lines.push(l),
      (n) => long.push(n),
      8,
    );
    d.push('123456789');
    d.push('0abc\nok\n');
    d.push('123456789012\nfine\n');
    expect(lines).toEqual(['ok', 'fine']);
    expect(long).toEqual([9, 12]);
  });

  it('validates messages to the placer', () => {
    const cfg: ToPlacer = {
      type: 'config',
      rules: [WORK],
      cgroupRoot: 'awg',
      mount: MOUNT,
      down: ['vpn'],
      ownPid: 7,
    };
    expect(parseToPlacer(encode(cfg).trim())).toEqual(cfg);
    expect(parseToPlacer('{"type":"stats","id":3}')).toEqual({ type: 'stats', id: 3 });
    expect(parseToPlacer('{"type":"rescan"}')).toEqual({ type: 'rescan' });
    for (const bad of [
      'nope',
      '[]',
      '{"type":"x"}',
      '{"type":"down","down":[1]}',
      '{"type":"stats","id":-1}',
      JSON.stringify({ ...cfg, cgroupRoot: '/abs' }),
      JSON.stringify({ ...cfg, cgroupRoot: 'awg/../x' }),
      JSON.stringify({ ...cfg, rules: [{ name: 'x' }] }),
      JSON.stringify({ ...cfg, mount: { mountPoint: 1 } }),
      JSON.stringify({ ...cfg, ownPid: 0 }),
    ])
      expect(parseToPlacer(bad), bad).toHaveProperty('invalid');
  });

  it('parses what the placer says; unknown lines are not protocol', () => {
    expect(parseFromPlacer('{"type":"ready","pid":5,"fifo":false,"reason":"EPERM"}')).toEqual({
      type: 'ready',
      pid: 5,
      fifo: false,
      reason: 'EPERM',
    });
    const st = {
      type: 'stats',
      id: 2,
      ...zeroStats(),
      placed: 4,
      connector: { received: 9, overruns: 1 },
      rssKb: 100,
    };
    expect(parseFromPlacer(JSON.stringify(st))).toEqual(st);
    expect(parseFromPlacer(JSON.stringify({ ...st, placed: -1 }))).toBeUndefined();
    expect(parseFromPlacer('{"type":"error","kind":"weird","message":"m","fatal":true}')).toEqual({
      type: 'error',
      kind: 'driver',
      message: 'm',
      fatal: true,
    });
    expect(parseFromPlacer('{"type":"placed","pid":9,"execNs":"100","placedNs":"250"}')).toEqual({
      type: 'placed',
      pid: 9,
      execNs: '100',
      placedNs: '250',
    });
    expect(
      parseFromPlacer('{"type":"placed","pid":9,"execNs":"1e3","placedNs":"250"}'),
    ).toBeUndefined();
    expect(parseFromPlacer('Debugger attached.')).toBeUndefined();
  });
});
