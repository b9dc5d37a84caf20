/**
 * Which rtnetlink and nf_tables events wake the loop: echoes of our own changes are ignored,
 * drift is not.
 */
import { describe, expect, it } from 'vitest';
import {
  NftTableWatch,
  wakingEvent,
  type RtnlFilterState,
} from '../../../src/resources/monitor/linux.js';
import { parseNftEvent, type NftEvent } from '../../../src/native/nftnl.js';
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

  const ev = (change: string, table = 'awg', family = 1): NftEvent => ({
    type: 'nft',
    change,
    family,
    table,
    portid: 1,
  });
  const watch = () => new NftTableWatch(() => 'awg');

  it('outside a run: any change to our table wakes, other tables and families do not', () => {
    const w = watch();
    expect(w.batch([ev('delrule')], false)).toEqual({ wake: 'nftables: delrule inet awg' });
    expect(w.batch([ev('newrule', 'filter'), ev('deltable', 'awg', 2)], false)).toEqual({});
    expect(w.batch([{ type: 'resync' }], false).wake).toMatch(/lost/);
  });

  it('during our run: our own replace is an echo, also in two reads; a table left deleted (flush ruleset) wakes after a second look', () => {
    const replace = ['delrule', 'delchain', 'deltable', 'newtable', 'newchain', 'newrule'];
    const w = watch();
    expect(
      w.batch(
        replace.map((c) => ev(c)),
        true,
      ),
    ).toEqual({});
    expect(w.batch([ev('delrule')], true)).toEqual({});
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
    // a flush: still gone at the second look
    const flush = [ev('delrule'), ev('delchain'), ev('deltable'), ev('deltable', 'other', 2)];
    expect(w.batch(flush, true)).toEqual({ recheck: true });
    expect(w.recheck()).toBe('nftables: deltable inet awg');
  });
});
