import { describe, expect, it } from 'vitest';
import { trafficEvent, withLinkTraffic } from '../../../src/daemon/traffic.js';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import { sampleStatus } from './server-fake-core.js';

describe('traffic', () => {
  it('a TUN tunnel gets its link counters; a proxy tunnel or an unread link gets none', () => {
    const tunnels = [
      {
        name: 'work',
        type: 'wireguard',
        link: 'awg-work',
        up: true,
        rxBytes: 1,
        txBytes: 2,
        peers: [],
      },
      {
        name: 'gone',
        type: 'wireguard',
        link: 'awg-gone',
        up: false,
        rxBytes: 0,
        txBytes: 0,
        peers: [],
      },
      { name: 'px', type: 'socks5', up: true, rxBytes: 3, txBytes: 4, peers: [] },
    ];
    const out = withLinkTraffic(
      tunnels,
      new Map([['awg-work', { rxPackets: 1, rxBytes: 84, txPackets: 2, txBytes: 168 }]]),
    );
    expect(out.map((t) => t.linkTraffic)).toEqual([
      { rxPackets: 1, rxBytes: 84, txPackets: 2, txBytes: 168 },
      undefined,
      undefined,
    ]);
  });

  it('an event only when a counter moved; it carries every rule and tunnel', () => {
    const s = sampleStatus();
    const first = trafficEvent(s, '', 'T1');
    expect(first.event).toMatchObject({
      type: 'traffic',
      at: 'T1',
      rules: [
        { name: 'browser', txBytes: 180 },
        { name: 'mail', connections: 2 },
      ],
      tunnels: [{ tunnel: 'work', link: { rxPackets: 90000000000 } }, { tunnel: 'idle' }],
    });
    expect(trafficEvent(s, first.key, 'T2').event).toBeUndefined();
    const moved = {
      ...s,
      rules: [{ ...s.rules![0]!, rxBytes: s.rules![0]!.rxBytes + 1 }, s.rules![1]!],
    };
    expect(trafficEvent(moved, first.key, 'T3').event?.rules[0]!.rxBytes).toBe(2 ** 50 + 1);
    expect(trafficEvent({ tunnels: [] }, '', 'T4').event).toBeUndefined();
  });

  it('status text shows both directions per rule and the link counters; the event has one line', () => {
    const text = renderDaemonStatus(sampleStatus());
    expect(text).toContain(
      'rule browser → work: route work, tx 3 packets 180 B, rx 1099511627776 packets 1024.0 TiB',
    );
    expect(text).toContain('  link awg-work: rx 90000000000 packets 111.8 GiB, tx 1 packets 40 B');
    const ev = trafficEvent(sampleStatus(), '', 'T').event!;
    expect(formatEvent(ev)).toBe(
      'traffic: rule browser tx 180 B rx 1024.0 TiB, rule mail tx 4 B rx 8 B, tunnel work tx 42 B rx 115.0 GiB, tunnel idle tx 0 B rx 0 B',
    );
  });

  it('macOS rows (the flow router counts connections and their payload): no packets shown', () => {
    const s = {
      ...sampleStatus(),
      rules: [
        {
          name: 'mail',
          target: 'home',
          route: 'home',
          txPackets: 0,
          txBytes: 4,
          rxPackets: 0,
          rxBytes: 2048,
          connections: 3,
        },
      ],
    };
    const text = renderDaemonStatus(s);
    expect(text).toContain(
      'rule mail → home: route home, 3 connections, tx 4 B, rx 2.0 KiB (payload)',
    );
    expect(text).not.toContain('packets 4 B');
  });
});
