/**
 * The typed configuration delta the device accepts (`device.configure`) and that UAPI
 * `set=1` parses into. Semantics follow the UAPI keys (PROTOCOL.md §10): absent = unchanged.
 */
import type { AwgParams } from '../awg/params.js';
import type { UintRange } from '../awg/range.js';

export interface PeerConfig {
  publicKey: Uint8Array;
  remove?: boolean;
  /** only update an existing peer; never create */
  updateOnly?: boolean;
  /** null or all-zero = no PSK */
  presharedKey?: Uint8Array | null;
  /**
   * `ip:port` or `[v6]:port`; through `configure` also `host:port` (resolved with the
   * device's resolver at up and re-resolved after repeated handshake failures). null clears.
   */
  endpoint?: string | null;
  /** seconds; a range draws a fresh interval each time the timer is armed (AWG 3) */
  persistentKeepalive?: number | UintRange;
  replaceAllowedIps?: boolean;
  /** prefixes to add; a leading `-` removes that prefix */
  allowedIps?: string[];
}

export interface DeviceConfig {
  /** null or all-zero clears the key */
  privateKey?: Uint8Array | null;
  listenPort?: number;
  /** 0 disables */
  fwmark?: number;
  replacePeers?: boolean;
  /** AWG parameters to change; in `i`, undefined keeps a slot, null clears it */
  awg?: Partial<Omit<AwgParams, 'i'>> & { i?: ReadonlyArray<string | null | undefined> };
  peers?: PeerConfig[];
}
