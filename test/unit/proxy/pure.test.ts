import { describe, expect, it } from 'vitest';
import { decodeSockaddr } from '../../../src/native/origdst.js';
import { decideFallback, fallbackDialer, type FallbackMode } from '../../../src/proxy/fallback.js';
import {
  connectError,
  connectRequest,
  parseConnectResponse,
} from '../../../src/proxy/http-connect.js';
import { classifySocksError } from '../../../src/proxy/socks5.js';
import { ProxyDialError, type DialErrorKind, type Dialer } from '../../../src/proxy/types.js';
import { PassThrough } from 'node:stream';

describe('decodeSockaddr', () => {
  it('sockaddr_in as docs/platform-linux.md#so_original_dst lays it out (family host order, port big-endian)', () => {
    const b = Buffer.from('020015b30a4d00050000000000000000', 'hex');
    expect(decodeSockaddr(b)).toEqual({ family: 4, address: '10.77.0.5', port: 5555 });
  });
  it('sockaddr_in6, compressed per RFC 5952', () => {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(10, 0);
    b.writeUInt16BE(5555, 2);
    Buffer.from('fd770000000000000000000000000005', 'hex').copy(b, 8);
    expect(decodeSockaddr(b)).toEqual({ family: 6, address: 'fd77::5', port: 5555 });
    Buffer.from('20010db8000000010000000000000001', 'hex').copy(b, 8);
    expect(decodeSockaddr(b)?.address).toBe('2001:db8:0:1::1');
    Buffer.from('20010db8000100010001000100010001', 'hex').copy(b, 8);
    expect(decodeSockaddr(b)?.address).toBe('2001:db8:1:1:1:1:1:1');
  });
  it('unknown family or short buffer → undefined', () => {
    expect(decodeSockaddr(Buffer.from('1100', 'hex'))).toBeUndefined();
    expect(decodeSockaddr(Buffer.from('0a00', 'hex'))).toBeUndefined();
  });
});

describe('decideFallback', () => {
  const st = { index: 0, candidates: 2, hops: 0, maxHops: 3, directTried: false };
  const table: [FallbackMode, DialErrorKind, Partial<typeof st>, string][] = [
    ['allow-direct', 'unreachable', {}, 'direct'],
    ['allow-direct', 'auth', {}, 'direct'],
    ['allow-direct', 'timeout', { directTried: true }, 'fail'],
    ['allow-direct', 'rejected', {}, 'fail'],
    ['block', 'unreachable', {}, 'fail'],
    ['drop', 'unreachable', {}, 'fail'],
    ['failover', 'unreachable', {}, 'next'],
    ['failover', 'unreachable', { index: 1 }, 'fail'],
    ['failover', 'protocol', { hops: 3, candidates: 9 }, 'fail'],
    ['failover', 'rejected', {}, 'fail'],
  ];
  it.each(table)('%s after %s %o → %s', (mode, kind, s, want) => {
    expect(decideFallback(mode, kind, { ...st, ...s }).action).toBe(want);
  });
});

describe('fallbackDialer', () => {
  const ok =
    (tag: string): Dialer =>
    async () =>
      Object.assign(new PassThrough(), { tag });
  const down: Dialer = async () => {
    throw new ProxyDialError('unreachable', 'down');
  };
  const tagOf = (d: unknown) => (d as { tag: string }).tag;

  it('allow-direct redials direct once', async () => {
    const d = fallbackDialer({ candidates: [down], mode: 'allow-direct', direct: ok('direct') });
    expect(tagOf(await d({ host: '192.0.2.1', port: 80 }))).toBe('direct');
  });
  it('block and drop fail with the upstream error', async () => {
    for (const mode of ['block', 'drop'] as const)
      await expect(
        fallbackDialer({ candidates: [down], mode, direct: ok('d') })({ host: 'x', port: 1 }),
      ).rejects.toThrow('down');
  });
  it('failover walks the candidates, bounded by maxHops', async () => {
    const seen: number[] = [];
    const counting =
      (i: number, d: Dialer): Dialer =>
      async (dst) => {
        seen.push(i);
        return d(dst);
      };
    const d = fallbackDialer({
      candidates: [counting(0, down), counting(1, down), counting(2, ok('third'))],
      mode: 'failover',
    });
    expect(tagOf(await d({ host: 'x', port: 1 }))).toBe('third');
    expect(seen).toEqual([0, 1, 2]);
    const bounded = fallbackDialer({
      candidates: [down, down, ok('never')],
      mode: 'failover',
      maxHops: 1,
    });
    await expect(bounded({ host: 'x', port: 1 })).rejects.toThrow('down');
  });
  it('a candidate known down is skipped without dialling', async () => {
    let dialled = false;
    const spy: Dialer = async () => {
      dialled = true;
      return new PassThrough();
    };
    const d = fallbackDialer({
      candidates: [spy, ok('second')],
      mode: 'failover',
      isUp: (i) => i !== 0,
    });
    expect(tagOf(await d({ host: 'x', port: 1 }))).toBe('second');
    expect(dialled).toBe(false);
  });
  it('a refusal of the destination never falls back', async () => {
    const refused: Dialer = async () => {
      throw new ProxyDialError('rejected', 'forbidden');
    };
    await expect(
      fallbackDialer({ candidates: [refused], mode: 'allow-direct', direct: ok('d') })({
        host: 'x',
        port: 1,
      }),
    ).rejects.toThrow('forbidden');
  });
});

describe('HTTP CONNECT framing', () => {
  it('request with Basic auth; IPv6 authority in brackets', () => {
    expect(connectRequest({ host: 'fd00::1', port: 443 }, { username: 'u', password: 'p:w' })).toBe(
      'CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443\r\nProxy-Authorization: Basic dTpwOnc=\r\n\r\n',
    );
    expect(connectRequest({ host: 'example.org', port: 80 })).toBe(
      'CONNECT example.org:80 HTTP/1.1\r\nHost: example.org:80\r\n\r\n',
    );
  });
  it('status lines', () => {
    expect(parseConnectResponse('HTTP/1.1 200 Connection established\r\nX: y')).toEqual({
      status: 200,
      reason: 'Connection established',
    });
    expect(parseConnectResponse('HTTP/1.0 407')).toEqual({ status: 407, reason: '' });
    expect(() => parseConnectResponse('SSH-2.0-OpenSSH')).toThrow(/invalid status line/);
  });
  it.each([
    [407, 'auth', /requires authentication/],
    [401, 'auth', /requires authentication/],
    [403, 'rejected', /forbids CONNECT to 192\.0\.2\.1:80/],
    [502, 'rejected', /could not reach/],
    [400, 'rejected', /refused CONNECT/],
  ])('%i → %s', (status, kind, msg) => {
    const e = connectError({ status, reason: 'X' }, 'p:3128', { host: '192.0.2.1', port: 80 });
    expect(e.kind).toBe(kind);
    expect(e.status).toBe(status);
    expect(e.message).toMatch(msg);
  });
});

describe('classifySocksError', () => {
  it.each([
    ['Socks5 Authentication failed', 'auth'],
    ['Received invalid Socks5 initial handshake (no accepted authentication type)', 'auth'],
    ['Socks5 proxy rejected connection - ConnectionRefused', 'rejected'],
    ['Proxy connection timed out', 'timeout'],
    ['Socket closed', 'protocol'],
  ])('%s → %s', (m, k) => expect(classifySocksError(m)).toBe(k));
});
