/**
 * The macOS network wake source (resources/monitor/darwin.ts) on captured and synthesised
 * PF_ROUTE messages and captured `scutil --dns` output, through a fake route socket.
 */
import { describe, expect, it } from 'vitest';
import { dnsFingerprint, watchDarwinNetwork, wakingRouteMessage, type RouteMessageSource } from '../../../src/resources/monitor/darwin.js';
import { encodeRtmGet } from '../../../src/native/darwin/layouts.js';
import { bytes, fixture } from './fixtures.js';

const RTM_ADD = () => bytes('binary/rtm-add-bytes-mullvad-test-failing-rtmsg.txt');
const RTM_DELMADDR = () => bytes('binary/rtm-delmaddr-hex-tailscale-issue1416.txt');
/** if_msghdr (RTM_IFINFO, 112 bytes, no sockaddrs): utun index 9 went down */
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
const DNS_A = fixture('dns/scutil-dns-split-tunnel-supplemental-utun2-10.15.3-TRUNCATED.txt');
const DNS_B = fixture('dns/scutil-dns-tailscale-search-domains-2023-headscale.txt');

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
    expect(wakingRouteMessage(bad, { echo: true })).toBe('an unreadable routing message: full re-observation');
  });
});

describe('the DNS watcher', () => {
  it('compares the parsed resolvers, not the text', () => {
    expect(dnsFingerprint(DNS_A)).toBe(dnsFingerprint(`${DNS_A}\n\n`));
    expect(dnsFingerprint(DNS_A)).not.toBe(dnsFingerprint(DNS_B));
  });

  it('wakes when scutil --dns changes after a routing message, once per change, echo or not', async () => {
    const answers = [DNS_A, DNS_A, DNS_B, DNS_B];
    const reads: string[] = [];
    const exec = { read: async (cmd: string, args: string[]) => (reads.push([cmd, ...args].join(' ')), { stdout: answers.shift() ?? DNS_B, stderr: '', code: 0 }) };
    let emit: (m: Uint8Array) => void = () => {};
    let closed = false;
    const source: RouteMessageSource = { onMessage: (cb) => void (emit = cb), close: () => void (closed = true) };
    const wakes: string[] = [];
    const w = await watchDarwinNetwork({ onChange: (d) => wakes.push(d), isEcho: () => true, claims: () => ({ linkPrefix: 'awg-', routeProtocol: 0 }) }, { source, exec });
    const settle = async () => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    emit(RTM_ADD()); // echo: the route message itself does not wake; DNS unchanged
    await settle();
    expect(wakes).toEqual([]);
    emit(RTM_ADD()); // DNS_B now
    await settle();
    expect(wakes).toEqual(['DNS resolver configuration changed (scutil --dns)']);
    emit(ifinfo(2)); // the interface message wakes; DNS unchanged
    await settle();
    expect(wakes).toEqual(['DNS resolver configuration changed (scutil --dns)', 'RTM_IFINFO (if #2)']);
    expect(reads.every((r) => r === 'scutil --dns')).toBe(true);
    await w.close();
    expect(closed).toBe(true);
  });
});
