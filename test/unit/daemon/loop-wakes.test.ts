/** Which rtnetlink events wake the loop: echoes of our own changes are ignored, drift is not. */
import { describe, expect, it } from 'vitest';
import { wakingEvent, type RtnlFilterState } from '../../../src/resources/monitor/linux.js';
import type { RtnlEvent } from '../../../src/native/rtnl.js';

const base = { portid: 0, seq: 0, family: 2 };
const link = (
  ifindex: number,
  ifname: string,
  up: boolean,
  type: 'newlink' | 'dellink' = 'newlink',
): RtnlEvent => ({ ...base, type, ifindex, ifname, flags: up ? 1 : 0, change: 1 });
const route = (
  type: 'newroute' | 'delroute',
  dst: string,
  ifindex: number,
  protocol: number,
  table = 254,
): RtnlEvent => ({
  ...base,
  type,
  ifindex,
  dst,
  protocol,
  table,
  routeType: 1,
  scope: 0,
  nlFlags: 0,
});
const addr = (type: 'newaddr' | 'deladdr', address: string, ifindex: number): RtnlEvent => ({
  ...base,
  type,
  ifindex,
  address,
  prefixlen: 24,
  flags: 0,
  scope: 0,
});
const o = (echo: boolean) => ({ echo, linkPrefix: 'awg-', routeProtocol: 0xa7 });
const st = (): RtnlFilterState => ({
  names: new Map([
    [2, 'eth0'],
    [9, 'awg-vpn'],
  ]),
});

describe('wakingEvent', () => {
  it('underlay changes always wake', () => {
    for (const echo of [false, true]) {
      expect(wakingEvent([route('delroute', '0.0.0.0/0', 2, 4)], st(), o(echo))).toBe(
        'delroute 0.0.0.0/0 table 254 dev eth0',
      );
      expect(wakingEvent([addr('deladdr', '10.200.9.1', 2)], st(), o(echo))).toContain(
        'deladdr 10.200.9.1/24 dev eth0',
      );
      expect(wakingEvent([link(2, 'eth0', false)], st(), o(echo))).toBe('newlink eth0 down');
    }
  });

  it('during the echo window our own routes, addresses and link-up events are ignored', () => {
    const ours = [
      route('newroute', '10.200.50.0/24', 9, 0xa7, 52000),
      addr('newaddr', '10.200.50.1', 9),
      link(9, 'awg-vpn', true),
      route('newroute', '10.9.0.0/16', 0, 0xa7, 52001),
    ];
    expect(wakingEvent(ours, st(), o(true))).toBeUndefined();
    // outside the window the same events are drift: wake
    expect(wakingEvent(ours, st(), o(false))).toBeDefined();
  });

  it('an admin-down of our link wakes even in the echo window (its routes vanish silently)', () => {
    expect(wakingEvent([link(9, 'awg-vpn', false)], st(), o(true))).toBe('newlink awg-vpn down');
  });

  it('IPv6 link-local and local-table noise on our links never wakes', () => {
    const noise = [
      addr('newaddr', 'fe80::1', 9),
      route('newroute', 'fe80::/64', 9, 2),
      route('newroute', '10.200.50.1/32', 9, 2, 255),
    ];
    expect(wakingEvent(noise, st(), o(false))).toBeUndefined();
  });

  it('learns link names from events; a resync always wakes', () => {
    const s: RtnlFilterState = { names: new Map() };
    expect(wakingEvent([link(12, 'awg-new', true)], s, o(true))).toBeUndefined();
    expect(s.names.get(12)).toBe('awg-new');
    expect(
      wakingEvent([route('newroute', '10.1.0.0/16', 12, 0xa7, 52002)], s, o(true)),
    ).toBeUndefined();
    expect(wakingEvent([{ type: 'resync' }], s, o(true))).toContain('re-observation');
  });
});
