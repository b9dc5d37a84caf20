/**
 * Tunnel config → the engine's desired spec (resources.ts EngineSpec). Pure: secret values
 * are passed in and only their fingerprints are kept (keyed by the host's fingerprint key,
 * passed in too); an unresolved secret is described (`unresolved:file …`) so a plan without
 * secrets still shows that one is wanted.
 */
import { AwgError } from '../errors.js';
import { canonicalPrefix } from '../config/cidr.js';
import { describeSecret } from '../config/describe.js';
import { keepaliveSpec } from '../config/keepalive.js';
import { fingerprint } from '../config/fingerprint.js';
import { formatPath, type PathKey } from '../config/positions.js';
import {
  AMNEZIAWG_UAPI_DIR,
  engineOf,
  isWgLike,
  linkName,
  WIREGUARD_UAPI_DIR,
  type ProxyTunnel,
  type Secret,
  type Tunnel,
  type WgLikeTunnel,
} from '../config/schema.js';
import type { Allocation } from './alloc.js';
import type {
  EngineHostSpec,
  EngineObfuscation,
  EngineSpec,
  ProxyEngineSpec,
  WgEngineSpec,
} from './resources.js';

/** resolved secret values by config path (`tunnels.work.privateKey`) */
export type SecretValues = ReadonlyMap<string, string>;

/** resolved secrets and the key that fingerprints them */
export interface Secrets {
  values: SecretValues;
  fingerprintKey: Uint8Array;
}

function secretFp(secret: Secret, path: PathKey[], secrets?: Secrets): string {
  const v = secrets?.values.get(formatPath(path));
  return v !== undefined
    ? fingerprint(v, secrets!.fingerprintKey)
    : `unresolved:${describeSecret(secret)}`;
}

/** `secrets` and `key` as BuildOptions carries them: values without a key are a bug (never an unkeyed fingerprint) */
export function secretsWith(
  values: SecretValues | undefined,
  key: Uint8Array | undefined,
): Secrets | undefined {
  if (!values || values.size === 0) return undefined;
  if (!key) throw new AwgError('bug', 'secret values were given without the fingerprint key');
  return { values, fingerprintKey: key };
}

export function engineSpec(
  name: string,
  t: Tunnel,
  alloc: Allocation,
  secrets?: Secrets,
): EngineSpec {
  return isWgLike(t)
    ? wgEngineSpec(name, t, alloc, secrets)
    : proxyEngineSpec(name, t, alloc, secrets);
}

export function wgEngineSpec(
  name: string,
  t: WgLikeTunnel,
  alloc: Allocation,
  secrets?: Secrets,
): WgEngineSpec {
  const base = ['tunnels', name];
  const config: WgEngineSpec['config'] = {
    privateKey: secretFp(t.privateKey, [...base, 'privateKey'], secrets),
    listenPort: t.listenPort ?? 0,
    // the engine's own UDP carries the bypass mark: admitted by the kill switch, never re-tunnelled
    fwmark: alloc.bypassMark,
    peers: t.peers.map((p, i) => ({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey
        ? secretFp(p.presharedKey, [...base, 'peers', i, 'presharedKey'], secrets)
        : null,
      endpoint: p.endpoint ?? null,
      allowedIPs: p.allowedIPs.map((a) => canonicalPrefix(a).cidr),
      persistentKeepalive: keepaliveSpec(p.persistentKeepalive),
    })),
  };
  if (t.type === 'amneziawg') {
    const { headerProtectionKey: hpk, ...rest } = t.obfuscation;
    // a secret like the PSK: plans and status carry only its fingerprint
    const obfuscation: EngineObfuscation =
      hpk === undefined
        ? rest
        : {
            ...t.obfuscation,
            headerProtectionKey: secretFp(
              hpk,
              [...base, 'obfuscation', 'headerProtectionKey'],
              secrets,
            ),
          };
    config.obfuscation = obfuscation;
  }
  const host = engineHostSpec(t);
  return {
    tunnel: name,
    type: t.type,
    link: linkName(name),
    ...(host !== undefined ? { engine: host } : {}),
    config,
  };
}

/**
 * `engine:` → EngineHostSpec; undefined for the embedded engine. An external engine's UAPI
 * directory defaults by its program's file name (amneziawg-go keeps its own).
 */
export function engineHostSpec(t: WgLikeTunnel): EngineHostSpec | undefined {
  const e = engineOf(t);
  if (e === 'embedded') return undefined;
  if (e === 'kernel') return 'kernel';
  const base = e.external.slice(e.external.lastIndexOf('/') + 1);
  return {
    external: e.external,
    uapiDir: e.uapiDir ?? (base.startsWith('amneziawg') ? AMNEZIAWG_UAPI_DIR : WIREGUARD_UAPI_DIR),
  };
}

export function proxyEngineSpec(
  name: string,
  t: ProxyTunnel,
  alloc: Allocation,
  secrets?: Secrets,
): ProxyEngineSpec {
  const ta = alloc.tunnels.get(name)!;
  return {
    tunnel: name,
    type: t.type,
    config: {
      server: t.server,
      port: t.port,
      redirectPort: ta.redirectPort!,
      redirectPortDirect: ta.redirectPortDirect!,
      fwmark: alloc.bypassMark,
      dns: [...t.dns],
      auth: t.auth
        ? {
            username: t.auth.username,
            password: secretFp(t.auth.password, ['tunnels', name, 'auth', 'password'], secrets),
          }
        : null,
      ...(t.type === 'socks5' ? { udp: t.udp } : { tls: t.tls }),
    },
  };
}
