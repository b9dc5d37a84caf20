/**
 * nettop's CSV (the monitor's per-socket counts on macOS) on the captured outputs
 * (test/fixtures/macos/process/nettop-*.txt) and on the variants their layout implies.
 */
import { describe, expect, it } from 'vitest';
import {
  NettopStreamParser,
  parseNettop,
  payloadOf,
  type NettopSample,
  type NettopSocketRow,
} from '../../../src/procs/top/nettop.js';
import { fixture } from './fixtures.js';

const SOCKETS = 'process/nettop-L-n-x-sockets-netscope-EXCERPT.txt';
const TWO = 'process/nettop-P-d-L2-J-bytes-two-samples.txt';

describe('nettop CSV', () => {
  it('per-socket rows under their process, by header names (default columns)', () => {
    const { samples, skipped } = parseNettop(fixture(SOCKETS));
    expect(skipped).toBe(0);
    expect(samples).toHaveLength(1);
    const s = samples[0]!;
    expect(s.time).toBe('18:18:38.329546');
    const procs = s.rows.filter((r) => r.kind === 'process');
    expect(procs.map((r) => [r.name, r.pid, r.bytesIn, r.bytesOut])).toEqual([
      ['mDNSResponder', 272, 67044191, 20822887],
      ['zerotier-one', 284, 80254563, 60708540],
      ['Microsoft Edge ', 772, 13530917, 11022],
    ]);
    const socks = s.rows.filter((r): r is NettopSocketRow => r.kind === 'socket');
    expect(socks).toHaveLength(6);
    expect(socks[0]).toEqual({
      kind: 'socket',
      proto: 'udp',
      family: 6,
      local: { address: '*', port: 5353 },
      remote: { address: '*', port: 0 },
      pid: 272,
      interface: 'en0',
      bytesIn: 14431855,
      bytesOut: 8190886,
      rxDupe: 0,
      retransmitted: 0,
    });
    expect(socks[2]).toMatchObject({
      proto: 'udp',
      family: 4,
      local: { address: '192.168.3.37', port: 62457 },
      remote: { address: '*', port: 0 },
      pid: 284,
    });
    const tcp = socks.at(-1)!;
    expect(tcp).toMatchObject({
      proto: 'tcp',
      family: 4,
      local: { address: '192.168.3.37', port: 56241 },
      remote: { address: '17.57.145.55', port: 5223 },
      pid: 772,
      interface: 'en0',
      state: 'Established',
      bytesIn: 27201,
      bytesOut: 31090,
      rxDupe: 0,
      retransmitted: 0,
    });
    // the utun5 row belongs to the process row above it
    expect(socks[3]).toMatchObject({ interface: 'utun5', pid: 772 });
  });

  it('a stream of samples, each begun by its header (per-process -J selection)', () => {
    const { samples } = parseNettop(fixture(TWO));
    expect(samples.map((s) => s.time)).toEqual(['15:25:39.366091', '15:25:40.368639']);
    expect(samples[1]!.rows).toEqual([
      { kind: 'process', name: 'apsd', pid: 395, bytesIn: 0, bytesOut: 0 },
      { kind: 'process', name: 'mDNSResponder', pid: 490, bytesIn: 16942, bytesOut: 0 },
    ]);
  });

  it('streamed in arbitrary chunks, a sample is handed on when the next header begins', () => {
    const text = fixture(TWO);
    const got: NettopSample[] = [];
    const p = new NettopStreamParser((s) => got.push(s));
    for (let i = 0; i < text.length; i += 7) p.push(text.slice(i, i + 7));
    expect(got).toHaveLength(1); // the second is complete only when the stream ends
    p.end();
    expect(got).toHaveLength(2);
    expect(got).toEqual(parseNettop(text).samples);
  });

  it("a terminal's header (no time column) parses alike; IPv6 ends keep their zone", () => {
    const { samples } = parseNettop(
      [
        ',interface,state,bytes_in,bytes_out,rx_dupe,rx_ooo,re-tx,',
        'curl.4242,,,1200,300,0,0,0,',
        'tcp6 fe80::1%lo0.52000<->fe80::1%lo0.8080,lo0,Established,1200,300,100,0,40,',
        'tcp6 2001:db8::5.443<->2001:db8::9.61000,en0,Established,5,6,,,,',
        '',
      ].join('\n'),
    );
    const rows = samples[0]!.rows;
    expect(samples[0]!.time).toBeUndefined();
    expect(rows[1]).toMatchObject({
      family: 6,
      local: { address: 'fe80::1%lo0', port: 52000 },
      remote: { address: 'fe80::1%lo0', port: 8080 },
      pid: 4242,
    });
    expect(payloadOf(rows[1] as NettopSocketRow)).toEqual({ sent: 260, received: 1100 });
    expect(rows[2]).toMatchObject({
      local: { address: '2001:db8::5', port: 443 },
      remote: { address: '2001:db8::9', port: 61000 },
    });
  });

  it('rows it cannot read are skipped and counted, never guessed (a humanised count, a row before any header)', () => {
    const { samples, skipped } = parseNettop(
      [
        'apsd.395,1,2,', // before any header
        'time,,bytes_in,bytes_out,',
        '15:00:00.1,apsd.395,1.2 MiB,3,',
        '15:00:00.1,mDNSResponder.490,7,8,',
        '15:00:00.1,tcp4 1.2.3.4<->5.6.7.8:9,9,9,', // no port
      ].join('\n'),
    );
    expect(skipped).toBe(3);
    expect(samples[0]!.rows).toEqual([
      { kind: 'process', name: 'mDNSResponder', pid: 490, bytesIn: 7, bytesOut: 8 },
    ]);
  });

  it('payload: TCP duplicates and retransmissions out, UDP as counted', () => {
    const base = {
      kind: 'socket' as const,
      family: 4 as const,
      local: { address: '10.0.0.2', port: 1 },
      remote: { address: '10.0.0.3', port: 2 },
      bytesIn: 1000,
      bytesOut: 2000,
    };
    expect(payloadOf({ ...base, proto: 'tcp', rxDupe: 10, retransmitted: 200 })).toEqual({
      sent: 1800,
      received: 990,
    });
    expect(payloadOf({ ...base, proto: 'udp' })).toEqual({ sent: 2000, received: 1000 });
  });
});
