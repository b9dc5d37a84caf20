import { describe, expect, it } from 'vitest';
import {
  parseLsofError,
  parseLsofInet,
  parseNetstatAn,
  utunsFromControlSockets,
} from '../../../src/platform/darwin/sockets.js';
import { fixture } from './fixtures.js';

describe('netstat -An (10.14.6)', () => {
  const n = parseNetstatAn(fixture('process/netstat-An-10.14.6-jc.txt'));

  it('internet sockets: tcp4/tcp6/udp4/udp46, wildcard and truncated endpoints', () => {
    expect(n.inet[0]).toEqual({
      socket: '7fb03cb94d505aed',
      flowhash: 'cedd0cbf',
      proto: 'tcp4',
      recvQ: 0,
      sendQ: 0,
      local: { address: '192.168.1.221', port: 5486, truncated: true },
      foreign: { address: '140.82.113.26', port: 443, truncated: false },
      state: 'ESTABLISHED',
    });
    const lo = n.inet.find((s) => s.local.address === '127.0.0.1' && s.local.port === 53755)!;
    expect(lo).toMatchObject({
      proto: 'tcp4',
      foreign: { address: '127.0.0.1', port: 53763, truncated: false },
    });
    const udp = n.inet.find((s) => s.proto === 'udp4' && s.local.port === 58043)!;
    expect(udp).toMatchObject({ local: { address: '*', port: 58043 }, foreign: { address: '*' } });
    expect(udp.state).toBeUndefined();
    expect(n.inet.find((s) => s.proto === 'tcp6')!.local.truncated).toBe(true);
    expect(n.inet.some((s) => s.proto === 'udp46' && s.local.port === 5353)).toBe(true);
    expect(n.inet.find((s) => s.recvQ === 31)!.state).toBe('CLOSE_WAIT');
  });

  it('kernel control modules and the open utun control sockets (unit N+1 = utunN)', () => {
    expect(n.controlModules.get('com.apple.net.utun_control')).toBe(6);
    expect(n.controlModules.size).toBe(17);
    const utun = n.controlSockets.filter((s) => s.name === 'com.apple.net.utun_control');
    expect(utun.map((s) => s.unit)).toEqual([1, 2, 3, 4]);
    expect(utun.every((s) => s.id === 6)).toBe(true);
    expect(utunsFromControlSockets(n.controlSockets)).toEqual(['utun0', 'utun1', 'utun2', 'utun3']);
  });
});

describe('lsof -i', () => {
  it('truncated and full command names', () => {
    expect(
      parseLsofInet(fixture('process/lsof-n-i-port-5000-monterey-truncated-name.txt')),
    ).toEqual([
      {
        command: 'ControlCe',
        pid: 687,
        user: 'XXXX',
        fd: '16u',
        type: 'IPv4',
        node: 'TCP',
        name: '*:commplex-main',
        state: 'LISTEN',
      },
      {
        command: 'ControlCe',
        pid: 687,
        user: 'XXXX',
        fd: '17u',
        type: 'IPv6',
        node: 'TCP',
        name: '*:commplex-main',
        state: 'LISTEN',
      },
    ]);
    expect(
      parseLsofInet(fixture('process/lsof-c0-n-i-port-5000-monterey-full-name.txt')).map(
        (r) => r.command,
      ),
    ).toEqual(['ControlCenter', 'ControlCenter']);
  });
  it('usage error of the lsof 4.91 macOS ships', () => {
    const t = fixture('process/lsof-usage-error-sonoma-14.6.txt');
    expect(parseLsofInet(t)).toEqual([]);
    expect(parseLsofError(t)).toEqual({
      message: 'unknown -s protocol: "UDP:Idle"',
      version: '4.91',
    });
  });
});
