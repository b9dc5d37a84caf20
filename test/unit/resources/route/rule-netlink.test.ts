/**
 * A policy rule of an RTM_GETRULE dump as `ip -j -N rule show` (iproute2 6.1) prints it
 * (resources/route/rule-netlink.ts): keys, order and values, from messages built here field by
 * field. The same against a kernel's captured replies: route/probe-netlink.test.ts; against
 * `ip` itself on random rules: test/netns/routing-probe.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_INET6,
  attr,
  buildMessage,
  parseAddr,
  parseMessages,
  u32Attr,
  u8Attr,
} from '../../../../src/native/rtnl.js';
import { RTM_NEWRULE } from '../../../../src/native/rtnl-routing.js';
import { ruleRowOf } from '../../../../src/resources/route/rule-netlink.js';
import { describeRuleRow, parseRuleRows } from '../../../../src/resources/rule/parse.js';

/** fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, u32 flags */
const hdr = (
  family: number,
  o: { dst?: number; src?: number; tos?: number; table?: number; action: number; flags?: number },
) => {
  const b = Buffer.from([
    family,
    o.dst ?? 0,
    o.src ?? 0,
    o.tos ?? 0,
    o.table ?? 0,
    0,
    0,
    o.action,
    0,
    0,
    0,
    0,
  ]);
  b.writeUInt32LE(o.flags ?? 0, 8);
  return b;
};
const row = (family: number, o: Parameters<typeof hdr>[1], attrs: ReturnType<typeof attr>[]) =>
  ruleRowOf(parseMessages(buildMessage(RTM_NEWRULE, 2, 1, 0, hdr(family, o), attrs))[0]!);
const u16pair = (type: number, a: number, b: number) => {
  const v = Buffer.alloc(4);
  v.writeUInt16LE(a, 0);
  v.writeUInt16LE(b, 2);
  return attr(type, v);
};

describe('a rule as ip -j -N rule show prints it', () => {
  it("main's rule: priority, `src all`, the table as a number, no protocol for the kernel's", () => {
    expect(
      JSON.stringify(
        row(AF_INET, { table: 254, action: 1 }, [
          u32Attr(6, 32766),
          u32Attr(15, 254),
          u8Attr(21, 2),
          u32Attr(14, 0xffffffff),
        ]),
      ),
    ).toBe('{"priority":32766,"src":"all","table":"254"}');
  });

  it("awg's first-route rule: iif, fwmark 0 with a mask, suppress_prefixlen, protocol", () => {
    expect(
      JSON.stringify(
        row(AF_INET, { table: 252, action: 1 }, [
          u32Attr(6, 5299),
          attr(3, Buffer.from('lo\0')),
          u32Attr(16, 0x0f000000),
          u32Attr(15, 52099),
          u32Attr(14, 0),
          u8Attr(21, 167),
        ]),
      ),
    ).toBe(
      '{"priority":5299,"src":"all","fwmark":"0","fwmask":"0xf000000","iif":"lo","table":"52099","suppress_prefixlen":0,"protocol":"167"}',
    );
  });

  it('every selector in iproute2 order: not, src/len, dst (a host: no length), tos, uid range, ipproto, ports', () => {
    const r = row(AF_INET, { src: 24, dst: 32, tos: 0x10, table: 200, action: 1, flags: 0x2 }, [
      attr(2, parseAddr('10.200.50.0')),
      attr(1, parseAddr('10.8.0.9')),
      u32Attr(10, 1),
      u32Attr(16, 0xffffffff),
      attr(17, Buffer.from('d0\0')),
      (() => {
        const v = Buffer.alloc(8);
        v.writeUInt32LE(100, 0);
        v.writeUInt32LE(200, 4);
        return attr(20, v);
      })(),
      u8Attr(22, 6),
      u16pair(23, 1000, 2000),
      u16pair(24, 53, 53),
    ]);
    expect(JSON.stringify(r)).toBe(
      '{"priority":0,"not":null,"src":"10.200.50.0","srclen":24,"dst":"10.8.0.9","tos":"0x10","fwmark":"0x1","oif":"d0","uid_start":100,"uid_end":200,"ipproto":"ipproto-6","sport_start":1000,"sport_end":2000,"dport":53,"table":"200"}',
    );
    // parse.ts sees selectors it never sets: a competitor before the band, described from the row
    const p = parseRuleRows([r!], 4, { protocol: 167, rulePriority: 5200, bandSize: 100 });
    expect(p.competitors).toHaveLength(1);
    expect(describeRuleRow(p.competitors[0]!)).toContain(
      'ip -4 rule 0: not src 10.200.50.0 srclen 24 dst 10.8.0.9',
    );
  });

  it('actions: a number for unreachable, goto with its target (or none, unresolved), nop', () => {
    expect(row(AF_INET6, { action: 7 }, [u32Attr(6, 2000)])).toEqual({
      priority: 2000,
      src: 'all',
      action: '7',
    });
    expect(row(AF_INET, { action: 2, flags: 0x4 }, [u32Attr(6, 2200), u32Attr(4, 30000)])).toEqual({
      priority: 2200,
      src: 'all',
      goto: 30000,
      unresolved: null,
    });
    expect(row(AF_INET, { action: 2 }, [])).toEqual({ priority: 0, src: 'all', goto: 'none' });
    expect(row(AF_INET6, { src: 120, action: 3 }, [attr(2, parseAddr('fd00:200::'))])).toEqual({
      priority: 0,
      src: 'fd00:200::',
      srclen: 120,
      nop: null,
    });
  });
});
