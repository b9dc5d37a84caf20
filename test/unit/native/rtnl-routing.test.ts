/**
 * The routing probe's rtnetlink messages (native/rtnl-routing.ts) and their rows as `ip -j -N`
 * prints them (resources/route/probe-netlink.ts `routeJson`, `ruleJson`): requests laid out
 * as iproute2 6.1 sends them, replies built here field by field. Replies captured from a
 * kernel are in rtnl-routing-captured.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_INET6,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PRIORITY,
  RTA_TABLE,
  RTM_GETROUTE,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  attr,
  buildMessage,
  parseAddr,
  parseMessages,
  u32Attr,
  inetNtop,
} from '../../../src/native/rtnl.js';
import {
  FRA_PRIORITY,
  FRA_TABLE,
  RTA_VIA,
  RTM_F_LOOKUP_TABLE,
  RTM_GETRULE,
  RTM_NEWRULE,
  buildGetRouteDump,
  buildGetRuleDump,
  buildRouteGet,
  parseRouteRow,
  parseRuleRow,
} from '../../../src/native/rtnl-routing.js';
import { routeJson, ruleJson } from '../../../src/resources/route/probe-netlink.js';

const rtmsg = (family: number, dstLen: number, table: number, type: number, flags = 0) => {
  const b = Buffer.from([family, dstLen, 0, 0, table, 3, 0, type, 0, 0, 0, 0]);
  b.writeUInt32LE(flags, 8);
  return b;
};
const fibRuleHdr = (family: number, table: number, action: number) =>
  Buffer.from([family, 0, 0, 0, table, 0, 0, action, 0, 0, 0, 0]);
const one = (b: Buffer) => parseMessages(b)[0]!;
const names = (i: number) => ({ 2: 'eth0', 7: 'awg-t1' })[i] ?? `if${i}`;

describe('inetNtop: addresses as iproute2 prints them (glibc inet_ntop)', () => {
  it('known forms', () => {
    const t = (a: string) => inetNtop(parseAddr(a));
    expect(t('10.200.0.1')).toBe('10.200.0.1');
    expect(t('2001:db8::1')).toBe('2001:db8::1');
    expect(t('::')).toBe('::');
    expect(t('::1')).toBe('::1');
    expect(t('fe80::')).toBe('fe80::');
    // one zero group is not shortened; of two equal runs the first is
    expect(t('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(t('2001:0:0:1:0:0:1:1')).toBe('2001::1:0:0:1:1');
    expect(t('1:0:0:1:0:0:0:1')).toBe('1:0:0:1::1');
    // IPv4-mapped and -compatible addresses end dotted
    expect(t('::ffff:10.1.2.3')).toBe('::ffff:10.1.2.3');
    const compat = Buffer.alloc(16);
    parseAddr('10.1.2.3').copy(compat, 12);
    expect(inetNtop(compat)).toBe('::10.1.2.3');
  });

  it('any IPv6 address: the text means the same bytes, `::` at most once, lower-case hex', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xdb8, 0x2001), {
          minLength: 8,
          maxLength: 8,
        }),
        (words) => {
          const b = Buffer.alloc(16);
          words.forEach((w, i) => b.writeUInt16BE(w, i * 2));
          const text = inetNtop(b);
          // the WHATWG URL parser reads embedded IPv4 as RFC 4291 does
          const full = words.map((w) => w.toString(16)).join(':');
          expect(new URL(`http://[${text}]/`).hostname).toBe(new URL(`http://[${full}]/`).hostname);
          expect(text.split('::').length).toBeLessThanOrEqual(2);
          expect(text).toBe(text.toLowerCase());
          expect(text).not.toMatch(/(^|:)0+[0-9a-f]/);
        },
      ),
    );
  });
});

describe('requests', () => {
  it("a family's route dump and rule dump: the header of the family, nothing else", () => {
    const r = buildGetRouteDump(AF_INET6, 9, 77);
    expect(r.length).toBe(16 + 12);
    expect([r.readUInt16LE(4), r.readUInt16LE(6), r.readUInt32LE(8), r.readUInt32LE(12)]).toEqual([
      RTM_GETROUTE,
      NLM_F_REQUEST | NLM_F_DUMP,
      9,
      77,
    ]);
    expect([...r.subarray(16)]).toEqual([AF_INET6, ...Array<number>(11).fill(0)]);
    const u = buildGetRuleDump(AF_INET, 10);
    expect([u.readUInt16LE(4), u.readUInt16LE(6), u.readUInt8(16), u.length]).toEqual([
      RTM_GETRULE,
      NLM_F_REQUEST | NLM_F_DUMP,
      AF_INET,
      28,
    ]);
  });

  it('`ip -4 route get ADDR mark M`: RTA_DST /32, RTA_MARK, the lookup-table flag, an ACK asked', () => {
    const m = one(buildRouteGet(parseAddr('10.200.72.9'), 0x0f000000, 5));
    expect(m.type).toBe(RTM_GETROUTE);
    expect(m.flags).toBe(NLM_F_REQUEST | NLM_F_ACK);
    expect([m.payload[0], m.payload[1], m.payload.readUInt32LE(8)]).toEqual([
      AF_INET,
      32,
      RTM_F_LOOKUP_TABLE,
    ]);
    expect(m.payload.subarray(12).toString('hex')).toBe(
      // RTA_DST (len 8, type 1) 10.200.72.9; RTA_MARK (len 8, type 16) 0x0f000000 LE
      '080001000ac84809' + '080010000000000f',
    );
  });

  it('IPv6: /128, no table flag, and no RTA_MARK for mark 0 (iproute2 leaves it out)', () => {
    const m = one(buildRouteGet(parseAddr('2001:db8::9'), 0, 6));
    expect([m.payload[0], m.payload[1], m.payload.readUInt32LE(8)]).toEqual([AF_INET6, 128, 0]);
    expect(m.payload.length).toBe(12 + 20);
  });
});

describe('replies → rows → what `ip -j -N` prints', () => {
  it('a default route of main: no RTA_DST, `default`, its gateway, device and metric', () => {
    const m = one(
      buildMessage(RTM_NEWROUTE, 2, 1, 0, rtmsg(AF_INET, 0, 254, 1), [
        u32Attr(RTA_TABLE, 254),
        u32Attr(RTA_PRIORITY, 100),
        attr(RTA_GATEWAY, parseAddr('10.200.50.1')),
        u32Attr(RTA_OIF, 2),
      ]),
    );
    const row = parseRouteRow(m)!;
    expect(row).toEqual({
      family: AF_INET,
      table: 254,
      dstLen: 0,
      protocol: 3,
      type: 1,
      flags: 0,
      oif: 2,
      priority: 100,
      gateway: '10.200.50.1',
    });
    expect(routeJson(row, names)).toEqual({
      dst: 'default',
      gateway: '10.200.50.1',
      dev: 'eth0',
      table: '254',
      metric: 100,
    });
  });

  it('a table above 255 comes from RTA_TABLE (rtm_table says 252); a host route prints bare', () => {
    const row = parseRouteRow(
      one(
        buildMessage(RTM_NEWROUTE, 2, 1, 0, rtmsg(AF_INET, 32, 252, 7), [
          u32Attr(RTA_TABLE, 52099),
          attr(RTA_DST, parseAddr('10.200.72.9')),
        ]),
      ),
    )!;
    expect(row.table).toBe(52099);
    // `-N`: the type as a number; protocol 3 (boot) is not printed, another one is
    expect(routeJson(row, names)).toEqual({ type: '7', dst: '10.200.72.9', table: '52099' });
    expect(routeJson({ ...row, protocol: 167 }, names).protocol).toBe('167');
  });

  it('IPv6 prefix, an IPv4 route via an IPv6 gateway (RTA_VIA), a multipath route without a device', () => {
    const v6 = parseRouteRow(
      one(
        buildMessage(RTM_NEWROUTE, 2, 1, 0, rtmsg(AF_INET6, 48, 254, 1), [
          attr(RTA_DST, parseAddr('2001:db8:1::')),
          u32Attr(RTA_OIF, 7),
          u32Attr(RTA_PRIORITY, 1024),
        ]),
      ),
    )!;
    expect(routeJson(v6, names)).toEqual({
      dst: '2001:db8:1::/48',
      dev: 'awg-t1',
      table: '254',
      metric: 1024,
    });
    const via = Buffer.concat([Buffer.from([AF_INET6, 0]), parseAddr('fe80::1')]);
    const v4 = parseRouteRow(
      one(buildMessage(RTM_NEWROUTE, 2, 1, 0, rtmsg(AF_INET, 0, 254, 1), [attr(RTA_VIA, via)])),
    )!;
    expect(routeJson(v4, names)).toEqual({
      dst: 'default',
      via: { host: 'fe80::1' },
      table: '254',
    });
  });

  it('`keep` sees family, rtm_table and length before any attribute; other messages are no route', () => {
    const msg = buildMessage(RTM_NEWROUTE, 2, 1, 0, rtmsg(AF_INET, 24, 200, 1), [
      attr(RTA_DST, parseAddr('10.8.0.0')),
    ]);
    const seen: number[][] = [];
    expect(
      parseRouteRow(one(msg), (...a) => {
        seen.push(a);
        return false;
      }),
    ).toBeUndefined();
    expect(seen).toEqual([[AF_INET, 200, 24]]);
    expect(parseRouteRow({ ...one(msg), type: RTM_NEWLINK })).toBeUndefined();
  });

  it('rules: FRA_PRIORITY (0 when absent), FRA_TABLE over the header; `action` only where iproute2 prints one', () => {
    const rule = (action: number, attrs: ReturnType<typeof u32Attr>[], table = 0) =>
      parseRuleRow(
        one(buildMessage(RTM_NEWRULE, 2, 1, 0, fibRuleHdr(AF_INET, table, action), attrs)),
      )!;
    const lookup = rule(1, [u32Attr(FRA_PRIORITY, 5299), u32Attr(FRA_TABLE, 52099)], 252);
    expect(lookup).toEqual({ family: AF_INET, priority: 5299, table: 52099, action: 1 });
    expect(ruleJson(lookup)).toEqual({ priority: 5299, table: '52099' });
    expect(ruleJson(rule(1, [], 254))).toEqual({ priority: 0, table: '254' });
    // unreachable, blackhole, prohibit: `action` (`-N`: a number); goto and nop: neither
    expect(ruleJson(rule(7, [u32Attr(FRA_PRIORITY, 2000)]))).toEqual({
      priority: 2000,
      action: '7',
    });
    expect(ruleJson(rule(6, []))).toEqual({ priority: 0, action: '6' });
    expect(ruleJson(rule(8, []))).toEqual({ priority: 0, action: '8' });
    expect(ruleJson(rule(2, []))).toEqual({ priority: 0 });
    expect(ruleJson(rule(3, []))).toEqual({ priority: 0 });
  });
});
