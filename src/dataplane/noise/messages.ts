/**
 * Byte layouts of the four WireGuard messages (docs/dataplane.md#wireguard-messages); all
 * integers little-endian.
 */
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
} from '../constants.js';
import { readU32, writeU32 } from '../bytes.js';

export { readU32, readU64, writeU32, writeU64 } from '../bytes.js';

export const INIT = {
  type: 0,
  sender: 4,
  ephemeral: 8,
  static: 40,
  timestamp: 88,
  mac1: 116,
  mac2: 132,
  size: MESSAGE_INITIATION_SIZE,
} as const;

export const RESP = {
  type: 0,
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  empty: 44,
  mac1: 60,
  mac2: 76,
  size: MESSAGE_RESPONSE_SIZE,
} as const;

export const COOKIE = {
  type: 0,
  receiver: 4,
  nonce: 8,
  cookie: 32,
  size: MESSAGE_COOKIE_REPLY_SIZE,
} as const;

export const TRANSPORT = {
  type: 0,
  receiver: 4,
  counter: 8,
  content: 16,
} as const;

/** Initiation body with zero macs; `type` is 1 for WireGuard or an AWG H1 value. */
export function encodeInitiation(
  type: number,
  sender: number,
  ephemeral: Uint8Array,
  encStatic: Uint8Array,
  encTimestamp: Uint8Array,
): Uint8Array {
  const m = new Uint8Array(INIT.size);
  writeU32(m, INIT.type, type);
  writeU32(m, INIT.sender, sender);
  m.set(ephemeral, INIT.ephemeral);
  m.set(encStatic, INIT.static);
  m.set(encTimestamp, INIT.timestamp);
  return m;
}

export function decodeInitiation(m: Uint8Array): {
  sender: number;
  ephemeral: Uint8Array;
  encStatic: Uint8Array;
  encTimestamp: Uint8Array;
} {
  return {
    sender: readU32(m, INIT.sender),
    ephemeral: m.slice(INIT.ephemeral, INIT.static),
    encStatic: m.subarray(INIT.static, INIT.timestamp),
    encTimestamp: m.subarray(INIT.timestamp, INIT.mac1),
  };
}

export function encodeResponse(
  type: number,
  sender: number,
  receiver: number,
  ephemeral: Uint8Array,
  encEmpty: Uint8Array,
): Uint8Array {
  const m = new Uint8Array(RESP.size);
  writeU32(m, RESP.type, type);
  writeU32(m, RESP.sender, sender);
  writeU32(m, RESP.receiver, receiver);
  m.set(ephemeral, RESP.ephemeral);
  m.set(encEmpty, RESP.empty);
  return m;
}

export function decodeResponse(m: Uint8Array): {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encEmpty: Uint8Array;
} {
  return {
    sender: readU32(m, RESP.sender),
    receiver: readU32(m, RESP.receiver),
    ephemeral: m.slice(RESP.ephemeral, RESP.empty),
    encEmpty: m.subarray(RESP.empty, RESP.mac1),
  };
}
