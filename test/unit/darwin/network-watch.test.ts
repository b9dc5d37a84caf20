/**
 * The macOS network wake source (resources/monitor/darwin.ts) on captured and synthesised
 * PF_ROUTE messages and captured `scutil --dns` / `--nwi` output, through a fake route
 * socket and a fake Exec; time is vitest's fake clock (no real-time assertions).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  classifyRouteRead,
  dnsFingerprint,
  primaryInterfaces,
  watchDarwinNetwork,
  wakingRouteMessage,
  type RouteMessageSource,
} from '../../../src/resources/monitor/darwin.js';
import { decodeRouteMessage } from '../../../src/platform/darwin/rtmsg.js';
import { encodeRtmGet } from '../../../src/native/darwin/layouts.js';
import { bytes, fixture } from './fixtures.js';

const RTM_ADD = () => bytes('binary/rtm-add-bytes-mullvad-test-failing-rtmsg.txt');
const RTM_DELMADDR = () => bytes('binary/rtm-delmaddr-hex-tailscale-issue1416.txt');
/** if_msghdr (RTM_IFINFO, 112 bytes, no sockaddrs): interface `index` went down */
function ifinfo(index: number): Uint8Array {
  const b = new Uint8Array(112);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 112, true);
  b[2] = 5;
  b[3] = 0xe;
  dv.setInt32(4, 0, true); // ifm_addrs
  dv.setInt32(8, 0x8050, true); // ifm_flags: no IFF_UP
  dv.setUint16(12, index, true); // ifm_index
  return b;
}
/**
 * rt_msghdr (92 bytes, LAYOUTS.md) + DST + GATEWAY + NETMASK of a default route, as route(8)
 * or configd send it: type 1 ADD / 2 DELETE / 3 CHANGE, the sender's pid at offset 16, a
 * zero-length netmask (sa_len 0 still takes 4 bytes).
 */
function defaultRoute(
  type: 1 | 2 | 3,
  o: { v6?: boolean; pid?: number; index?: number } = {},
): Uint8Array {
  const dst = o.v6
    ? [28, 30, ...new Array<number>(26).fill(0)]
    : [16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const gw = o.v6
    ? [28, 30, 0, 0, 0, 0, 0, 0, 0xfe, 0x80, ...new Array<number>(13).fill(0), 1, 4, 0, 0, 0]
    : [16, 2, 0, 0, 192, 168, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
  const mask = [0, 0, 0, 0];
  const b = new Uint8Array(92 + dst.length + gw.length + mask.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, b.length, true);
  b[2] = 5;
  b[3] = type;
  dv.setUint16(4, o.index ?? 4, true);
  dv.setInt32(8, 0x1 | 0x2 | 0x800, true); // UP|GATEWAY|STATIC
  dv.setInt32(12, 0x7, true); // DST|GATEWAY|NETMASK
  dv.setInt32(16, o.pid ?? 0, true);
  b.set([...dst, ...gw, ...mask], 92);
  return b;
}
const DNS_A = fixture('dns/scutil-dns-split-tunnel-supplemental-utun2-10.15.3-TRUNCATED.txt');
const DNS_B = fixture('dns/scutil-dns-tailscale-search-domains-2023-headscale.txt');
const NWI_UTUN4 = fixture('dns/scutil-nwi-surge-utun4-vpn-server-FRAGMENT.txt');
const NWI_EN0 = NWI_UTUN4.replace('utun4', '  en0');

describe('routing messages that wake the daemon', () => {
  it('a route added by someone wakes (captured RTM_ADD); during our own run it is an echo', () => {
    expect(wakingRouteMessage(RTM_ADD(), { echo: false })).toBe('RTM_ADD 192.168.88.0/24 (if #11)');
    expect(wakingRouteMessage(RTM_ADD(), { echo: true })).toBeUndefined();
  });
  it('an interface change always wakes; multicast membership and RTM_GET answers never do', () => {
    expect(wakingRouteMessage(ifinfo(9), { echo: true })).toBe('RTM_IFINFO (if #9)');
    expect(wakingRouteMessage(RTM_DELMADDR(), { echo: false })).toBeUndefined();
    expect(wakingRouteMessage(encodeRtmGet('1.1.1.1', 3), { echo: false })).toBeUndefined();
  });
  it('several messages in one read: the first that wakes is named; garbage forces a re-observation', () => {
    const two = new Uint8Array([...RTM_DELMADDR(), ...ifinfo(4)]);
    expect(wakingRouteMessage(two, { echo: false })).toBe('RTM_IFINFO (if #4)');
    const bad = RTM_ADD();
    bad[12] = 0xff; // rtm_addrs claims sockaddrs beyond rtm_msglen
    expect(wakingRouteMessage(bad, { echo: true })).toBe(
      'an unreadable routing message: full re-observation',
    );
  });
  it('a default-route change wakes inside our echo window too (awg never writes 0/0 on macOS); other routes there do not', () => {
    expect(classifyRouteRead(defaultRoute(2, { pid: 77 }), { echo: true, pid: 4242 })).toEqual({
      wake: 'RTM_DELETE 0.0.0.0/0 (if #4)',
      recheckDns: true,
    });
    expect(classifyRouteRead(RTM_ADD(), { echo: true, pid: 4242 })).toEqual({ recheckDns: false });
    // ours (rtm_pid) stays silent even then
    expect(classifyRouteRead(defaultRoute(2, { pid: 4242 }), { echo: true, pid: 4242 })).toEqual({
      recheckDns: false,
    });
  });
  it("lost messages force a re-observation: an empty read (the socket's signal for ENOBUFS), a truncated tail", () => {
    expect(classifyRouteRead(new Uint8Array(0), { echo: true })).toEqual({
      wake: 'routing messages lost: full re-observation',
      recheckDns: true,
    });
    const add = RTM_ADD();
    const cut = new Uint8Array([...ifinfo(3), ...add.subarray(0, 40)]);
    expect(classifyRouteRead(cut, { echo: true })).toEqual({
      wake: 'an unreadable routing message: full re-observation',
      recheckDns: true,
    });
    expect(classifyRouteRead(new Uint8Array([...RTM_DELMADDR(), ...add]), { echo: false })).toEqual(
      { wake: 'RTM_ADD 192.168.88.0/24 (if #11)', recheckDns: false },
    );
  });
  it('synthesised default routes decode as 0.0.0.0/0 and ::/0', () => {
    expect(decodeRouteMessage(defaultRoute(2))).toMatchObject({
      typeName: 'RTM_DELETE',
      prefixlen: 0,
      sockaddrs: { dst: { address: '0.0.0.0' }, gateway: { address: '192.168.1.1' } },
    });
    expect(decodeRouteMessage(defaultRoute(1, { v6: true }))).toMatchObject({
      typeName: 'RTM_ADD',
      prefixlen: 0,
      sockaddrs: { dst: { address: '::' } },
    });
  });
  it('messages with our own rtm_pid never wake nor re-read DNS; the same from another pid do', () => {
    expect(classifyRouteRead(defaultRoute(2, { pid: 4242 }), { echo: false, pid: 4242 })).toEqual({
      recheckDns: false,
    });
    expect(classifyRouteRead(defaultRoute(2, { pid: 77 }), { echo: false, pid: 4242 })).toEqual({
      wake: 'RTM_DELETE 0.0.0.0/0 (if #4)',
      recheckDns: true,
    });
    expect(classifyRouteRead(encodeRtmGet('1.1.1.1', 3, 4242), { echo: false, pid: 4242 })).toEqual(
      { recheckDns: false },
    );
  });
  it('DNS is re-read after a default-route change or an interface message, not after other routes', () => {
    expect(classifyRouteRead(defaultRoute(3, { v6: true }), { echo: true })).toEqual({
      wake: 'RTM_CHANGE ::/0 (if #4)',
      recheckDns: true,
    });
    expect(classifyRouteRead(ifinfo(2), { echo: true })).toEqual({
      wake: 'RTM_IFINFO (if #2)',
      recheckDns: true,
    });
    expect(classifyRouteRead(RTM_ADD(), { echo: false })).toEqual({
      wake: 'RTM_ADD 192.168.88.0/24 (if #11)',
      recheckDns: false,
    });
    expect(classifyRouteRead(RTM_DELMADDR(), { echo: false })).toEqual({ recheckDns: false });
  });
});

describe('the DNS watcher', () => {
  afterEach(() => void vi.useRealTimers());

  it('compares the parsed resolvers, not the text; the primary interface from --nwi', () => {
    expect(dnsFingerprint(DNS_A)).toBe(dnsFingerprint(`${DNS_A}\n\n`));
    expect(dnsFingerprint(DNS_A)).not.toBe(dnsFingerprint(DNS_B));
    expect(primaryInterfaces(NWI_UTUN4)).toEqual({ v4: 'utun4' });
    expect(primaryInterfaces(NWI_EN0)).toEqual({ v4: 'en0' });
  });

  function rig(opts: { echo?: () => boolean } = {}) {
    const answers = { dns: DNS_A, nwi: NWI_EN0 };
    const reads: string[] = [];
    const exec = {
      read: async (cmd: string, args: string[]) => {
        reads.push([cmd, ...args].join(' '));
        return { stdout: args[0] === '--dns' ? answers.dns : answers.nwi, stderr: '', code: 0 };
      },
    };
    let emit: (m: Uint8Array) => void = () => {};
    let closed = false;
    const source: RouteMessageSource = {
      onMessage: (cb) => void (emit = cb),
      close: () => void (closed = true),
    };
    const wakes: string[] = [];
    const start = () =>
      watchDarwinNetwork(
        {
          onChange: (d) => wakes.push(d),
          isEcho: opts.echo ?? (() => false),
          claims: () => ({ linkPrefix: 'awg-', routeProtocol: 0, nftTable: 'awg' }),
        },
        { source, exec, pid: 4242, dnsDebounceMs: 300 },
      );
    return { answers, reads, wakes, emit: (m: Uint8Array) => emit(m), start, closed: () => closed };
  }
  const flush = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };

  it('a burst of default-route messages: one read after 300 ms of quiet; unchanged output is no wake', async () => {
    vi.useFakeTimers();
    const r = rig({ echo: () => true }); // inside the echo window: the default routes wake, DNS stays silent
    const w = await r.start();
    expect(r.reads).toEqual(['scutil --dns', 'scutil --nwi']);
    r.emit(defaultRoute(2));
    await vi.advanceTimersByTimeAsync(200);
    r.emit(defaultRoute(1));
    await vi.advanceTimersByTimeAsync(299);
    expect(r.reads).toHaveLength(2); // the second message restarted the quiet period
    await vi.advanceTimersByTimeAsync(1);
    await flush();
    expect(r.reads).toHaveLength(4);
    expect(r.wakes).toEqual(['RTM_DELETE 0.0.0.0/0 (if #4)', 'RTM_ADD 0.0.0.0/0 (if #4)']);
    await w.close();
    expect(r.closed()).toBe(true);
  });

  it('wakes once when the resolvers change, once when the primary interface changes; other routes never read', async () => {
    vi.useFakeTimers();
    const r = rig();
    const w = await r.start();
    r.emit(RTM_ADD()); // not a default route: wakes as a route change, no DNS read
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.reads).toHaveLength(2);
    expect(r.wakes).toEqual(['RTM_ADD 192.168.88.0/24 (if #11)']);
    r.answers.dns = DNS_B;
    r.emit(defaultRoute(3, { pid: 4242 })); // our own message: nothing
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.reads).toHaveLength(2);
    r.emit(defaultRoute(3, { pid: 99 }));
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(r.wakes).toEqual([
      'RTM_ADD 192.168.88.0/24 (if #11)',
      'RTM_CHANGE 0.0.0.0/0 (if #4)',
      'DNS resolver configuration changed (scutil --dns)',
    ]);
    r.emit(defaultRoute(3, { pid: 99 })); // same answers again: the route wakes, DNS does not
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(r.wakes.filter((x) => x.startsWith('DNS'))).toHaveLength(1);
    r.answers.nwi = NWI_UTUN4;
    r.emit(ifinfo(7));
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(r.wakes.slice(-2)).toEqual([
      'RTM_IFINFO (if #7)',
      'primary interface changed (scutil --nwi): IPv4 en0 → utun4, IPv6 none → none',
    ]);
    await w.close();
  });

  it('our own DNS changes (echo window) become the baseline without a wake', async () => {
    vi.useFakeTimers();
    let echo = true;
    const r = rig({ echo: () => echo });
    const w = await r.start();
    r.answers.dns = DNS_B; // the DNS driver set our resolvers during the run
    r.emit(ifinfo(9)); // the utun came up: wakes (interface), DNS re-read silently
    echo = false; // the window closes before the read
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(r.wakes).toEqual(['RTM_IFINFO (if #9)']);
    r.emit(defaultRoute(1, { pid: 99 }));
    await vi.advanceTimersByTimeAsync(300);
    await flush();
    expect(r.wakes).toEqual(['RTM_IFINFO (if #9)', 'RTM_ADD 0.0.0.0/0 (if #4)']); // DNS_B is the baseline now
    await w.close();
  });

  it('close cancels a pending read', async () => {
    vi.useFakeTimers();
    const r = rig();
    const w = await r.start();
    r.emit(ifinfo(1));
    await w.close();
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.reads).toHaveLength(2);
    r.emit(ifinfo(1));
    expect(r.wakes).toEqual(['RTM_IFINFO (if #1)']);
  });
});
