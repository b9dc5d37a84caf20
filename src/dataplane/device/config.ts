/**
 * The typed configuration delta the device accepts (`device.configure`) and that UAPI
 * `set=1` parses into. Semantics follow the UAPI keys: absent = unchanged
 * (docs/dataplane.md#uapi-the-engines-configuration-socket).
 * `checkConfig` validates a whole delta before the device applies any of it.
 */
import { AwgError } from '../../errors.js';
import { type AwgParams, validateAwgParams } from '../awg/params.js';
import { type UintRange, range } from '../awg/range.js';
import { splitHostPort } from '../conn/bind.js';
import { MAX_PEERS } from '../constants.js';
import { type Prefix, parsePrefix } from './allowedips.js';

export interface PeerConfig {
  publicKey: Uint8Array;
  remove?: boolean;
  /** only update an existing peer; never create */
  updateOnly?: boolean;
  /** null or all-zero = no PSK */
  presharedKey?: Uint8Array | null | undefined;
  /**
   * `ip:port` or `[v6]:port`; through `configure` also `host:port` (resolved with the
   * device's resolver at up and re-resolved after repeated handshake failures). null clears.
   */
  endpoint?: string | null;
  /** seconds; a range draws a fresh interval each time the timer is armed (AWG 3) */
  persistentKeepalive?: number | UintRange | undefined;
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
  awg?:
    (Partial<Omit<AwgParams, 'i'>> & { i?: ReadonlyArray<string | null | undefined> }) | undefined;
  peers?: PeerConfig[];
}

export interface PrefixChanges {
  add: Prefix[];
  remove: Prefix[];
}

/** A delta that passed `checkConfig`, with what it needs parsed. */
export interface CheckedConfig {
  /** the device's AWG parameters with the delta merged in; null: unchanged */
  awg: AwgParams | null;
  prefixes: Map<PeerConfig, PrefixChanges>;
}

/** The device state a delta is checked against. */
export interface ConfigBase {
  awg: AwgParams;
  peerCount: number;
  hasPeer(publicKeyHex: string): boolean;
}

const hexOf = (k: Uint8Array) => Buffer.from(k).toString('hex');

/** Validates the whole delta; throws AwgError('invalid-config') listing every problem. */
export function checkConfig(cfg: DeviceConfig, base: ConfigBase): CheckedConfig {
  const problems: string[] = [];
  let awg: AwgParams | null = null;
  if (cfg.awg) {
    const { i, ...rest } = cfg.awg;
    const merged: AwgParams = { ...base.awg, ...rest, i: [...base.awg.i] as AwgParams['i'] };
    i?.forEach((v, k) => {
      if (v !== undefined && k < 5) merged.i[k] = v === '' ? null : v;
    });
    problems.push(...validateAwgParams(merged));
    awg = merged;
  }
  if (
    cfg.listenPort !== undefined &&
    !(Number.isInteger(cfg.listenPort) && cfg.listenPort >= 0 && cfg.listenPort <= 65535)
  )
    problems.push('listen_port must be 0..65535');
  if (
    cfg.fwmark !== undefined &&
    !(Number.isInteger(cfg.fwmark) && cfg.fwmark >= 0 && cfg.fwmark <= 0xffff_ffff)
  )
    problems.push('fwmark must be a uint32');
  if (cfg.privateKey && cfg.privateKey.length !== 32) problems.push('private_key must be 32 bytes');
  const prefixes = new Map<PeerConfig, PrefixChanges>();
  for (const pc of cfg.peers ?? []) {
    if (pc.publicKey.length !== 32) problems.push('public_key must be 32 bytes');
    if (pc.presharedKey && pc.presharedKey.length !== 32)
      problems.push('preshared_key must be 32 bytes');
    if (pc.endpoint) {
      const hp = splitHostPort(pc.endpoint);
      if (!hp) problems.push(`invalid endpoint "${pc.endpoint}"`);
    }
    const pk = pc.persistentKeepalive;
    if (pk !== undefined) {
      const r = typeof pk === 'number' ? range(pk) : pk;
      if (!(
        Number.isInteger(r.lo) &&
        Number.isInteger(r.hi) &&
        r.lo >= 0 &&
        r.hi <= 65535 &&
        r.lo <= r.hi
      ))
        problems.push('persistent_keepalive_interval must be 0..65535');
    }
    const sets: PrefixChanges = { add: [], remove: [] };
    for (const a of pc.allowedIps ?? []) {
      try {
        if (a.startsWith('-')) sets.remove.push(parsePrefix(a.slice(1)));
        else sets.add.push(parsePrefix(a));
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    prefixes.set(pc, sets);
  }
  const newPeers = (cfg.peers ?? []).filter(
    (pc) => !pc.remove && !pc.updateOnly && !base.hasPeer(hexOf(pc.publicKey)),
  ).length;
  if (base.peerCount + newPeers > MAX_PEERS) problems.push(`too many peers (max ${MAX_PEERS})`);
  if (problems.length)
    throw new AwgError('invalid-config', problems.join('; '), {
      issues: problems.map((message) => ({
        file: '<uapi>',
        path: '',
        message,
        severity: 'error' as const,
      })),
    });
  return { awg, prefixes };
}
