/**
 * IP_BOUND_IF / IPV6_BOUND_IF (src/native/darwin/bound-if.ts): the setsockopt arguments byte
 * for byte (netinet/in.h IP_BOUND_IF 25 at IPPROTO_IP 0; netinet6/in6.h IPV6_BOUND_IF 125 at
 * IPPROTO_IPV6 41; an int interface index, little-endian on x86_64 and arm64), and the fd of
 * a Node socket (found the way native/sockmark.ts finds it; exercised on Linux).
 */
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { boundIfOption, encodeBoundIf, socketFd } from '../../../src/native/darwin/bound-if.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('IP_BOUND_IF', () => {
  it('IPv4: level 0, option 25, the index as an int', () => {
    const o = boundIfOption(11, 4);
    expect({ level: o.level, name: o.name, value: hex(o.value) }).toEqual({
      level: 0,
      name: 25,
      value: '0b000000',
    });
  });
  it('IPv6: level 41, option 125', () => {
    const o = boundIfOption(0x1234, 6);
    expect({ level: o.level, name: o.name, value: hex(o.value) }).toEqual({
      level: 41,
      name: 125,
      value: '34120000',
    });
  });
  it('no index 0 or fractions', () => {
    expect(() => encodeBoundIf(0)).toThrow();
    expect(() => encodeBoundIf(1.5)).toThrow();
  });
  it("a Node socket's fd: a bound dgram socket's, a raw fd as is; a net socket without a handle is a bug", async () => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    try {
      expect(socketFd(s)).toBeGreaterThan(2);
    } finally {
      s.close();
    }
    expect(socketFd(17)).toBe(17);
    expect(() => socketFd(new Socket())).toThrow(expect.objectContaining({ kind: 'bug' }));
  });
});
