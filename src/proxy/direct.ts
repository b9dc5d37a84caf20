/**
 * The `direct` upstream: connect to the original destination ourselves, with the bypass
 * SO_MARK so the route/redirect rules leave the socket alone (the `allow-direct` fallback).
 * Under an active kill switch such a socket is still dropped unless the destination is an
 * allowed endpoint — `allow-direct` and the kill switch are contradictory by design.
 */
import { connectTcp } from '../native/tcpsock.js';
import { ProxyDialError, classifySocketError, formatDst, type Dialer } from './types.js';

export function directDialer(o: {
  bypassMark?: number;
  timeoutMs?: number;
  highWaterMark?: number;
}): Dialer {
  return async (dst, opts = {}) => {
    try {
      return await connectTcp({
        host: dst.host,
        port: dst.port,
        mark: o.bypassMark,
        timeoutMs: o.timeoutMs ?? 10_000,
        allowHalfOpen: true,
        highWaterMark: o.highWaterMark,
        signal: opts.signal,
      });
    } catch (e) {
      throw new ProxyDialError(
        classifySocketError(e),
        `direct connect to ${formatDst(dst)} failed: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  };
}
