/**
 * Which rtnetlink and nf_tables events wake the loop: echoes of our own changes are ignored,
 * drift is not.
 */
import { describe, expect, it } from 'vitest';
import {
  NftTableWatch,
  tcWakingEvent,
  wakingEvent,
  type RtnlFilterState,
} from '../../../src/resources/monitor/linux.js';
import { parseNftEvent, type NftEvent } from '../../../src/native/nftnl.js';
import { parseTcEvent } from '../../../src/native/tcnl.js';
import type { NlMessage, RtnlEvent } from '../../../src/native/rtnl.js';

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

  it('a link of ours seen for the first time during the echo window (our run creating it, down) wakes nothing; outside it, it wakes', () => {
    const s = st();
    expect(wakingEvent([link(14, 'awg-t1', false)], s, o(true))).toBeUndefined();
    // known from now on: taken down again, it counts
    expect(wakingEvent([link(14, 'awg-t1', false)], s, o(true))).toBe('newlink awg-t1 down');
    expect(wakingEvent([link(15, 'awg-t2', false)], st(), o(false))).toBe('newlink awg-t2 down');
  });

  it('a packet capture toggling promiscuous mode (or allmulti) wakes nothing, on any link; an MTU change does', () => {
    // as the kernel sends them for `tcpdump -i eth0` (probed: change 0x100, flags unchanged)
    const capture = (ifindex: number, change: number): RtnlEvent => ({
      ...base,
      type: 'newlink',
      ifindex,
      flags: 0x11043,
      change,
      mtu: 1500,
    });
    for (const echo of [false, true])
      for (const i of [2, 9]) {
        expect(wakingEvent([capture(i, 0x100), capture(i, 0x200)], st(), o(echo))).toBeUndefined();
        expect(wakingEvent([capture(i, 0x101)], st(), o(false))).toBeDefined();
      }
    // no change bit at all: an attribute (MTU, name, …) changed
    expect(wakingEvent([capture(2, 0)], st(), o(true))).toBe('newlink eth0 up');
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

/** one nfnetlink notification as the kernel sends it (header, nfgenmsg, the table attribute) */
function nftMsg(msgType: number, family: number, table: string, subsys = 10): NlMessage {
  const name = Buffer.from(`${table}\0`);
  const attr = Buffer.alloc(4 + Math.ceil(name.length / 4) * 4);
  attr.writeUInt16LE(4 + name.length, 0);
  attr.writeUInt16LE(1, 2);
  name.copy(attr, 4);
  const payload = Buffer.concat([Buffer.from([family, 0, 0, 0]), attr]);
  return { type: (subsys << 8) | msgType, flags: 0, seq: 0, portid: 4242, payload };
}

describe('nf_tables notifications', () => {
  it('parseNftEvent reads the change, family and table of every kind that names one', () => {
    expect(parseNftEvent(nftMsg(2, 1, 'awg'))).toEqual({
      type: 'nft',
      change: 'deltable',
      family: 1,
      table: 'awg',
      portid: 4242,
    });
    expect(parseNftEvent(nftMsg(6, 2, 'filter'))?.change).toBe('newrule');
    expect(parseNftEvent(nftMsg(14, 1, 'awg'))?.change).toBe('delsetelem');
    // NEWGEN (its attribute 1 is the generation id), another subsystem, a short payload: none
    expect(parseNftEvent(nftMsg(16, 1, 'awg'))).toBeUndefined();
    expect(parseNftEvent(nftMsg(2, 1, 'awg', 1))).toBeUndefined();
    expect(parseNftEvent({ ...nftMsg(2, 1, 'awg'), payload: Buffer.alloc(2) })).toBeUndefined();
  });

  /** port 7: a command of ours (the daemon's `nft`); 4242: someone else's; 0: the kernel */
  const OURS = 7;
  const ev = (change: string, table = 'awg', family = 1, portid = OURS): NftEvent => ({
    type: 'nft',
    change,
    family,
    table,
    portid,
  });
  const watch = () =>
    new NftTableWatch(
      () => 'awg',
      (p) => p === OURS,
    );
  /** our own `nft -f` replace, as the kernel announces it */
  const replace = ['delrule', 'delchain', 'deltable', 'newtable', 'newchain', 'newrule'];

  it('any change to our table by someone else wakes, inside our run or not; other tables and families do not', () => {
    const w = watch();
    for (const echo of [false, true]) {
      expect(w.batch([ev('delrule', 'awg', 1, 4242)], echo)).toEqual({
        wake: 'nftables: delrule inet awg (netlink port 4242)',
      });
      expect(
        w.batch([ev('newrule', 'filter', 1, 4242), ev('deltable', 'awg', 2, 4242)], echo),
      ).toEqual({});
      expect(w.batch([{ type: 'resync' }], echo).wake).toMatch(/lost/);
    }
    // the kernel's own changes (port 0) wake outside our run only
    expect(w.batch([ev('delsetelem', 'awg', 1, 0)], false)).toEqual({
      wake: 'nftables: delsetelem inet awg',
    });
    expect(w.batch([ev('delsetelem', 'awg', 1, 0)], true)).toEqual({});
  });

  it('a change of ours never wakes, even when it arrives after the echo window', () => {
    const w = watch();
    for (const echo of [true, false])
      expect(
        w.batch(
          replace.map((c) => ev(c)),
          echo,
        ),
      ).toEqual({});
    // without a way to tell (no pid known), the echo window alone decides, as before
    const blind = new NftTableWatch(() => 'awg');
    expect(blind.batch([ev('delrule', 'awg', 1, 0)], true)).toEqual({});
    expect(blind.batch([ev('delrule')], false).wake).toBeDefined();
  });

  it('our own replace split over two reads asks for a second look; a table someone deleted during our run wakes at once', () => {
    const w = watch();
    // the replace's notifications split after the deletion: look again, and it is back
    expect(
      w.batch(
        replace.slice(0, 3).map((c) => ev(c)),
        true,
      ),
    ).toEqual({ recheck: true });
    expect(
      w.batch(
        replace.slice(3).map((c) => ev(c)),
        true,
      ),
    ).toEqual({});
    expect(w.recheck()).toBeUndefined();
    // someone's flush right behind our replace, in the same read: it wakes
    const flush = [
      ev('delrule', 'awg', 1, 4242),
      ev('delchain', 'awg', 1, 4242),
      ev('deltable', 'awg', 1, 4242),
      ev('deltable', 'other', 2, 4242),
    ];
    expect(w.batch([...replace.map((c) => ev(c)), ...flush], true)).toEqual({
      wake: 'nftables: delrule inet awg (netlink port 4242)',
    });
    // our own deletion that is not followed by the table's return: the second look wakes
    expect(w.batch([ev('deltable')], true)).toEqual({ recheck: true });
    expect(w.recheck()).toBe('nftables: deltable inet awg');
  });
});

describe('traffic-control notifications', () => {
  const msg = (type: number, ifindex: number, portid: number): NlMessage => {
    const payload = Buffer.alloc(20);
    payload.writeInt32LE(ifindex, 4);
    return { type, flags: 0, seq: 0, portid, payload };
  };
  const names = new Map([[7, 'awgq-1234567']]);

  it('parses qdisc, class and filter changes and skips everything else', () => {
    expect(parseTcEvent(msg(37, 7, 99))).toEqual({
      type: 'tc',
      change: 'delqdisc',
      ifindex: 7,
      portid: 99,
    });
    expect(parseTcEvent(msg(41, 7, 99))?.change).toBe('deltclass');
    expect(parseTcEvent(msg(44, 7, 99))?.change).toBe('newtfilter');
    expect(parseTcEvent(msg(16, 7, 99))).toBeUndefined();
    expect(parseTcEvent({ ...msg(37, 7, 99), payload: Buffer.alloc(4) })).toBeUndefined();
  });

  it("wakes for someone else's change, never for our own tc's, and for the kernel's outside our runs", () => {
    const ours = (p: number) => p === 4242;
    const ev = (change: string, portid: number) =>
      ({ type: 'tc', change, ifindex: 7, portid }) as const;
    expect(tcWakingEvent([ev('delqdisc', 4242)], names, { echo: false, ours })).toBeUndefined();
    expect(tcWakingEvent([ev('deltclass', 77)], names, { echo: true, ours })).toBe(
      'tc: deltclass dev awgq-1234567 (netlink port 77)',
    );
    expect(tcWakingEvent([ev('delqdisc', 0)], names, { echo: true, ours })).toBeUndefined();
    expect(tcWakingEvent([ev('delqdisc', 0)], names, { echo: false, ours })).toBe(
      'tc: delqdisc dev awgq-1234567',
    );
    expect(tcWakingEvent([{ type: 'resync' }], names, { echo: true, ours })).toBe(
      'traffic-control events lost: full re-observation',
    );
  });
});
