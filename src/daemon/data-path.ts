/**
 * Is a WireGuard peer's data path alive? (docs/architecture.md, "Tunnel health"). The failure
 * DPI causes: handshakes are answered, data messages (type 4) are dropped. WireGuard's own
 * timers bound a live peer's answer: it answers data with data or, within KEEPALIVE_TIMEOUT
 * (10 s), with a keepalive. So a peer with a fresh session (a handshake within
 * REJECT_AFTER_TIME) that we sent data to and that sent no transport message back for
 * `noDataBound` is dead on the data path.
 *
 * A keepalive answers only when it cannot be stale: a passive keepalive leaves the peer one
 * KEEPALIVE_TIMEOUT after the data that armed it (or, re-armed, a timeout after the previous
 * one), so one that arrives less than KEEPALIVE_STALE_MS after our first unanswered send may
 * have been armed by data from before a fault; counted, it would restart the count (slow
 * detection) or end a no-data down the fault has not ended (a flap). The daemon therefore
 * asks the peer for an immediate answer: while our data has been unanswered for
 * DATA_PROBE_AFTER_MS, and every tick while down for no-data, a data probe from the tunnel's
 * address with TTL 1, which the peer's kernel answers at once (time exceeded where it forwards;
 * awg's engine also probes the peer's endpoint address, which a kernel that does not forward
 * answers as its own: protocol unreachable;
 * awg's engine seals it itself, dataplane send.ts sendDataProbe; an external engine gets it
 * through its link, resources/engine/link-probe.ts) — a live one-way flow is answered within
 * a round trip, and a path that is back is seen within a tick.
 *
 * awg's own engine measures "sent since the last answer" itself (PeerStats.dataUnansweredMs,
 * per message type, with the same keepalive rule: dataplane receive.ts keepaliveAnswers). An external engine (wireguard-go, amneziawg-go) only gives rx_bytes and
 * tx_bytes, which count handshake messages too (and transport messages as plaintext + 32):
 * `ByteWatch` tells them apart by size between two samples — a delta that is a sum of a few
 * handshake/cookie message sizes is control traffic, anything else carried a transport
 * message; a tx delta made of keepalives only is not "data sent" (persistent keepalives are
 * never answered).
 */
// WireGuard's protocol constants (as src/dataplane/constants.ts, which this layer may not import)
const KEEPALIVE_TIMEOUT = 10_000;
const REJECT_AFTER_TIME = 180_000;
const MESSAGE_INITIATION_SIZE = 148;
const MESSAGE_RESPONSE_SIZE = 92;
const MESSAGE_COOKIE_REPLY_SIZE = 64;
const MESSAGE_KEEPALIVE_SIZE = 32;

/**
 * Sent data unanswered this long (ms, from the first unanswered send) while the peer answered
 * real data before: down. A dead path with traffic present is rated down within 10 s: the
 * bound, ≤ 1 s until the next health tick, ≤ 1 s until the first send after the fault; a
 * live one had DATA_PROBE_AFTER_MS..NO_DATA_MS to answer our data or five data probes.
 */
export const NO_DATA_MS = 7_000;
/** our data unanswered this long: the daemon sends a data probe each tick (awg's own engine) */
export const DATA_PROBE_AFTER_MS = 2_000;
/** a keepalive received this soon after the first unanswered send may be stale (see above) */
export const KEEPALIVE_STALE_MS = 2 * KEEPALIVE_TIMEOUT + 2_000;
/**
 * The bound when the peer's last message was a keepalive (a one-way flow: the peer answers
 * our data only with keepalives, one per KEEPALIVE_TIMEOUT): the timeout plus slack.
 */
export const NO_DATA_ONE_WAY_MS = KEEPALIVE_TIMEOUT + 2_000;
/**
 * External engines: the daemon cannot send a data probe through them, so a tunnel down for
 * no-data whose traffic moved to its fallback would stay down; after this long with no data
 * sent, the unanswered series is forgotten and the tunnel tried again.
 */
export const NO_DATA_RETRY_MS = 30_000;

export interface DataPathSample {
  /** Unix ms of the last handshake; 0 = never */
  lastHandshakeMs: number;
  /** ms since the first unanswered data message (0: none) */
  dataUnansweredMs: number;
  lastRxKeepalive: boolean;
}

/** the peer has a fresh session and our data went unanswered past the bound */
export function peerNoData(s: DataPathSample, nowMs: number): boolean {
  if (s.lastHandshakeMs <= 0 || nowMs - s.lastHandshakeMs >= REJECT_AFTER_TIME) return false;
  return s.dataUnansweredMs >= (s.lastRxKeepalive ? NO_DATA_ONE_WAY_MS : NO_DATA_MS);
}

/** The sizes of an engine's control messages on the wire (AmneziaWG: plus S1..S3 junk). */
export interface ControlSizes {
  init: number;
  response: number;
  cookie: number;
  keepalive: number;
}

export function controlSizes(o?: {
  s1?: number | undefined;
  s2?: number | undefined;
  s3?: number | undefined;
  s4?: number | undefined;
}): ControlSizes {
  return {
    init: MESSAGE_INITIATION_SIZE + (o?.s1 ?? 0),
    response: MESSAGE_RESPONSE_SIZE + (o?.s2 ?? 0),
    cookie: MESSAGE_COOKIE_REPLY_SIZE + (o?.s3 ?? 0),
    keepalive: MESSAGE_KEEPALIVE_SIZE + (o?.s4 ?? 0),
  };
}

/**
 * `d` is a sum of at most `max` messages of these sizes (0 counts): a sample covers one tick,
 * and initiations are rate-limited to one per REKEY_TIMEOUT (5 s).
 */
export function sumOf(d: number, sizes: readonly number[], max = 3): boolean {
  if (d === 0) return true;
  if (max === 0 || d < 0) return false;
  return sizes.some((s) => s > 0 && sumOf(d - s, sizes, max - 1));
}

/**
 * Derives DataPathSample's unanswered time from an external engine's byte counters, one
 * sample per health tick (the resolution: one tick). Data first seen unanswered in a sample
 * may have left right after the previous one: the series starts there (the counters are read
 * in the background, a reading late; this keeps detection within the same bound).
 */
export class ByteWatch {
  private rx = -1;
  private tx = -1;
  private unansweredSince: number | null = null;
  private lastRxKeepalive = false;
  private lastTxDataAt = 0;
  private at = 0;

  constructor(private readonly sizes: ControlSizes) {}

  sample(rxBytes: number, txBytes: number, nowMs: number): Omit<DataPathSample, 'lastHandshakeMs'> {
    const { init, response, cookie, keepalive } = this.sizes;
    if (this.rx >= 0 && rxBytes >= this.rx && txBytes >= this.tx) {
      const drx = rxBytes - this.rx;
      const dtx = txBytes - this.tx;
      // transport bytes received: data answers; keepalives (and control) only once not stale
      const rxData = !sumOf(drx, [init, response, cookie, keepalive]);
      const answered =
        rxData ||
        (!sumOf(drx, [init, response, cookie]) &&
          (this.unansweredSince === null || nowMs - this.unansweredSince >= KEEPALIVE_STALE_MS));
      if (answered) {
        this.unansweredSince = null;
        this.lastRxKeepalive = !rxData;
      } else if (!sumOf(dtx, [init, response, keepalive])) {
        this.unansweredSince ??= this.at;
        this.lastTxDataAt = nowMs;
      } else if (this.unansweredSince !== null && nowMs - this.lastTxDataAt >= NO_DATA_RETRY_MS)
        this.unansweredSince = null;
    }
    this.rx = rxBytes;
    this.tx = txBytes;
    this.at = nowMs;
    return {
      dataUnansweredMs:
        this.unansweredSince === null ? 0 : Math.max(1, nowMs - this.unansweredSince),
      lastRxKeepalive: this.lastRxKeepalive,
    };
  }
}
