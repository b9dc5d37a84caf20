/**
 * WireGuard constants. Names follow the whitepaper / wireguard-go `device/constants.go`.
 * Durations are in milliseconds.
 */

// ---- specification ----------------------------------------------------------------------

export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
export const REKEY_AFTER_TIME = 120_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT; // 18
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
export const REJECT_AFTER_TIME = 180_000;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
export const HANDSHAKE_INITIATION_RATE = 1_000 / 50; // 20 ms
export const PADDING_MULTIPLE = 16;

// ---- implementation ---------------------------------------------------------------------

/**
 * Counters are JS numbers on the hot path. 2^53 packets take centuries at line rate, so
 * treating counters at or above it as exhausted changes nothing observable.
 */
export const REKEY_AFTER_MESSAGES_NUM = Number.MAX_SAFE_INTEGER; // min(2^60, 2^53 - 1)
export const REJECT_AFTER_MESSAGES_NUM = Number.MAX_SAFE_INTEGER;

export const UNDER_LOAD_AFTER_TIME = 1_000;
/** Handshake messages per second that put the device under load (wireguard-go: queue ≥ 128). */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 128;
export const MAX_PEERS = 65_536;
export const QUEUE_STAGED_SIZE = 128;
export const DEFAULT_MTU = 1420;
export const DEFAULT_UDP_WINDOW = 500;

export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
export const RATELIMIT_GC_INTERVAL = 1_000;

/** Re-resolve a hostname endpoint after this many unanswered initiations (~15 s). */
export const RERESOLVE_AFTER_ATTEMPTS = 3;

export const MESSAGE_INITIATION_TYPE = 1;
export const MESSAGE_RESPONSE_TYPE = 2;
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
export const MESSAGE_TRANSPORT_TYPE = 4;

export const MESSAGE_INITIATION_SIZE = 148;
export const MESSAGE_RESPONSE_SIZE = 92;
export const MESSAGE_COOKIE_REPLY_SIZE = 64;
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16;
export const MESSAGE_TRANSPORT_SIZE = 32;
export const MESSAGE_KEEPALIVE_SIZE = 32;
export const MIN_MESSAGE_SIZE = 32;
export const MAX_MESSAGE_SIZE = 65_535;
export const MAX_CONTENT_SIZE = MAX_MESSAGE_SIZE - MESSAGE_TRANSPORT_SIZE;
