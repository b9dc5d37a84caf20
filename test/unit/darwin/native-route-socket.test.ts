/**
 * The RTM_GET request (src/native/darwin/route-socket.ts re-exports layouts.ts's encoder),
 * byte for byte, and round-tripped through src/platform/darwin/rtmsg.ts's decoder. Layout
 * facts: bsd/net/route.h struct rt_msghdr (92 bytes: u16 msglen, u8 version (RTM_VERSION 5),
 * u8 type (RTM_GET 4), u16 index, pad, int flags @8, int addrs @12, pid @16, seq @20, errno
 * @24, use @28, u32 inits @32, struct rt_metrics (14 × u32) @36); RTA_DST 0x1, RTA_IFP 0x10;
 * sockaddrs follow in RTA order, each rounded up to 4 bytes (test/fixtures/macos/binary/
 * LAYOUTS.md §1); sockaddr_in 16 bytes, sockaddr_in6 28, sockaddr_dl 20 (AF_LINK 18).
 * The drain of a ready socket: lost messages (ENOBUFS) reach the monitor as a full re-observation.
 */
import { describe, expect, it } from 'vitest';
import {
  RTA_DST,
  RTA_IFP,
  RTM_GET,
  RTM_VERSION,
  RT_MSGHDR_SIZE,
  drainRouteReads,
  encodeRtmGet,
} from '../../../src/native/darwin/route-socket.js';
import { classifyRouteRead } from '../../../src/resources/monitor/darwin.js';
import { decodeRouteMessage } from '../../../src/platform/darwin/rtmsg.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('RTM_GET request', () => {
  it('constants', () => {
    expect([RT_MSGHDR_SIZE, RTM_VERSION, RTM_GET, RTA_DST, RTA_IFP]).toEqual([92, 5, 4, 1, 0x10]);
  });
  it('IPv4: every byte', () => {
    const b = encodeRtmGet('8.8.4.4', 0x01020304, 0x1234);
    expect(hex(b)).toBe(
      '8000' +
        '05' +
        '04' +
        '0000' +
        '0000' + // msglen 128, version, type, index, pad
        '00000000' +
        '11000000' +
        '34120000' +
        '04030201' + // flags, addrs DST|IFP, pid, seq
        '00'.repeat(92 - 24) + // errno, use, inits, rt_metrics
        '10' +
        '02' +
        '0000' +
        '08080404' +
        '00'.repeat(8) + // sockaddr_in
        '14' +
        '12' +
        '00'.repeat(18), // empty sockaddr_dl
    );
    const m = decodeRouteMessage(b);
    expect(m).toMatchObject({
      msglen: 128,
      version: 5,
      typeName: 'RTM_GET',
      addrs: 0x11,
      pid: 0x1234,
      seq: 0x01020304,
    });
    expect(m.sockaddrs.dst).toEqual({ family: 'inet', address: '8.8.4.4' });
    expect(m.sockaddrs.ifp).toMatchObject({ family: 'link', name: '' });
  });
  it('IPv6: sockaddr_in6 is 28 bytes (already a multiple of 4), AF_INET6 30', () => {
    const b = encodeRtmGet('2606:4700::1111', 7);
    expect(b.length).toBe(92 + 28 + 20);
    expect(hex(b.subarray(0, 4))).toBe('8c000504');
    expect(hex(b.subarray(92, 120))).toBe(
      '1c' + '1e' + '0000' + '00000000' + '26064700000000000000000000001111' + '00000000',
    );
    expect(hex(b.subarray(120))).toBe('1412' + '00'.repeat(18));
    const m = decodeRouteMessage(b);
    expect(m).toMatchObject({ msglen: 140, addrs: 0x11, seq: 7, pid: 0 });
    expect(m.sockaddrs.dst).toMatchObject({ family: 'inet6', address: '2606:4700::1111' });
  });
});

describe('draining the route socket', () => {
  it('delivers each read, ENOBUFS as an empty message (the monitor re-observes), stops at EAGAIN', () => {
    const msg = encodeRtmGet('8.8.4.4', 1, 2);
    const reads = [msg.length, -55 /* ENOBUFS */, msg.length, -35 /* EAGAIN */, msg.length];
    const got: Uint8Array[] = [];
    drainRouteReads(
      (b) => {
        const n = reads.shift()!;
        if (n > 0) b.set(msg);
        return n;
      },
      new Uint8Array(2048),
      (m) => got.push(m),
    );
    expect(got.map((m) => m.length)).toEqual([msg.length, 0, msg.length]);
    expect(reads).toHaveLength(1); // nothing read after EAGAIN
    expect(classifyRouteRead(got[1]!, { echo: true }).wake).toMatch(/lost/);
  });
  it('another error ends the drain; a closed socket is not read', () => {
    const got: Uint8Array[] = [];
    let n = 0;
    drainRouteReads(
      () => (n++, -9 /* EBADF */),
      new Uint8Array(16),
      (m) => got.push(m),
    );
    expect([n, got.length]).toEqual([1, 0]);
    drainRouteReads(
      () => (n++, 4),
      new Uint8Array(16),
      (m) => got.push(m),
      () => true,
    );
    expect([n, got.length]).toEqual([1, 0]);
  });
});
