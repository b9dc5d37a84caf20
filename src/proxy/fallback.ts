/**
 * What a proxy tunnel does when its upstream cannot be dialled (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks): the pure
 * `decideFallback` and the `fallbackDialer` that consults it.
 *
 * - `allow-direct`: redial the destination directly (bypass mark), once.
 * - `failover`: try the next candidate upstream, at most `maxHops` extra dials; none left → fail.
 * - `block`, `drop`: fail.
 * Only "tunnel down" failures fall back (unreachable, timeout, auth, protocol). `rejected`
 * means the proxy is up and refused this destination: going direct would bypass the proxy's
 * own policy, so it fails under every mode. An established connection is never redialled:
 * when the upstream dies mid-transfer the app's connection is reset, and its next connection
 * goes through this decision again.
 */
import { ProxyDialError, type DialErrorKind, type Dialer } from './types.js';

export type FallbackMode = 'allow-direct' | 'failover' | 'block' | 'drop';

export type FallbackDecision =
  { action: 'direct' } | { action: 'next'; index: number } | { action: 'fail'; reason: string };

const TUNNEL_DOWN: ReadonlySet<DialErrorKind> = new Set([
  'unreachable',
  'timeout',
  'auth',
  'protocol',
]);

export interface FallbackState {
  /** index of the candidate that just failed */
  index: number;
  /** number of candidates (primary first) */
  candidates: number;
  /** extra dials done so far (0 after the primary failed) */
  hops: number;
  maxHops: number;
  /** a direct dial already failed */
  directTried: boolean;
}

export function decideFallback(
  mode: FallbackMode,
  kind: DialErrorKind,
  s: FallbackState,
): FallbackDecision {
  if (mode === 'drop') return { action: 'fail', reason: 'fallback drop' };
  if (!TUNNEL_DOWN.has(kind))
    return { action: 'fail', reason: `the proxy refused the destination (${kind})` };
  switch (mode) {
    case 'block':
      return { action: 'fail', reason: 'fallback block' };
    case 'allow-direct':
      return s.directTried
        ? { action: 'fail', reason: 'direct dial failed too' }
        : { action: 'direct' };
    case 'failover':
      if (s.hops >= s.maxHops)
        return { action: 'fail', reason: `failover gave up after ${s.hops} hops` };
      if (s.index + 1 >= s.candidates)
        return { action: 'fail', reason: 'no failover candidate left' };
      return { action: 'next', index: s.index + 1 };
  }
}

export interface FallbackAttempt {
  /** what failed: a candidate index or 'direct' */
  failed: number | 'direct';
  error: ProxyDialError;
  decision: FallbackDecision;
}

export interface FallbackDialerOptions {
  /** upstreams in order; the first is the tunnel's own proxy */
  candidates: Dialer[];
  mode: FallbackMode;
  /** required for allow-direct */
  direct?: Dialer;
  /** bound on extra dials under failover (default 3) */
  maxHops?: number;
  /** health of candidate i; a candidate known down is skipped without dialling */
  isUp?: ((index: number) => boolean) | undefined;
  onFallback?: (a: FallbackAttempt) => void;
}

function asDialError(e: unknown): ProxyDialError {
  return e instanceof ProxyDialError
    ? e
    : new ProxyDialError('unreachable', e instanceof Error ? e.message : String(e), { cause: e });
}

export function fallbackDialer(o: FallbackDialerOptions): Dialer {
  if (o.candidates.length === 0) throw new Error('fallbackDialer needs at least one candidate');
  const maxHops = o.maxHops ?? 3;
  return async (dst, opts = {}) => {
    let index = 0;
    let hops = 0;
    for (;;) {
      let err: ProxyDialError;
      if (o.isUp && !o.isUp(index))
        err = new ProxyDialError('unreachable', `upstream ${index} is down (health check)`);
      else {
        try {
          return await o.candidates[index]!(dst, opts);
        } catch (e) {
          err = asDialError(e);
        }
      }
      if (opts.signal?.aborted) throw err;
      const decision = decideFallback(o.mode, err.kind, {
        index,
        candidates: o.candidates.length,
        hops,
        maxHops,
        directTried: false,
      });
      o.onFallback?.({ failed: index, error: err, decision });
      if (decision.action === 'fail') throw err;
      if (decision.action === 'next') {
        index = decision.index;
        hops++;
        continue;
      }
      if (!o.direct)
        throw new ProxyDialError('blocked', 'allow-direct fallback without a direct dialer', {
          cause: err,
        });
      try {
        return await o.direct(dst, opts);
      } catch (e) {
        const de = asDialError(e);
        o.onFallback?.({
          failed: 'direct',
          error: de,
          decision: { action: 'fail', reason: 'direct dial failed too' },
        });
        throw de;
      }
    }
  };
}
