/**
 * EngineSpec (+ secret values) → UAPI `set=1` text (PROTOCOL.md §10). Pure. Keys are hex in
 * UAPI, base64 in the config. `full` configures from scratch (replace_peers); otherwise a
 * delta that keeps sessions of peers that stay (only their fields are rewritten).
 */
import type { EngineSpec } from '../../model/resources.js';
import { rangeOf, type AwgObfuscation } from '../../config/schema.js';

export interface EngineSecrets {
  privateKey: string;
  /** by peer public key (base64) */
  presharedKeys: Map<string, string>;
}

export interface EnginePeer {
  publicKey: string;
  presharedKey: string | null;
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
}

export interface WgEngineConfig {
  privateKey: string;
  listenPort: number;
  fwmark: number;
  peers: EnginePeer[];
  obfuscation?: AwgObfuscation;
}

export function wgConfigOf(spec: EngineSpec): WgEngineConfig {
  return spec.config as unknown as WgEngineConfig;
}

export const b64ToHex = (s: string): string => Buffer.from(s, 'base64').toString('hex');

function awgLines(o: AwgObfuscation | undefined): string[] {
  if (!o) return [];
  const out: string[] = [];
  for (const k of ['jc', 'jmin', 'jmax', 's1', 's2', 's3', 's4'] as const) if (o[k] !== undefined) out.push(`${k}=${o[k]}`);
  for (const k of ['h1', 'h2', 'h3', 'h4'] as const) {
    if (o[k] === undefined) continue;
    const r = rangeOf(o[k]!);
    out.push(`${k}=${r.min === r.max ? r.min : `${r.min}-${r.max}`}`);
  }
  for (const k of ['i1', 'i2', 'i3', 'i4', 'i5'] as const) if (o[k] !== undefined) out.push(`${k}=${o[k]}`);
  return out;
}

function peerLines(p: EnginePeer, secrets: EngineSecrets): string[] {
  const out = [`public_key=${b64ToHex(p.publicKey)}`];
  const psk = secrets.presharedKeys.get(p.publicKey);
  out.push(`preshared_key=${psk ? b64ToHex(psk) : '0'.repeat(64)}`);
  if (p.endpoint) out.push(`endpoint=${p.endpoint}`);
  out.push(`persistent_keepalive_interval=${p.persistentKeepalive}`);
  out.push('replace_allowed_ips=true');
  for (const a of p.allowedIPs) out.push(`allowed_ip=${a}`);
  return out;
}

/** Complete configuration for a fresh engine. */
export function fullSetText(spec: EngineSpec, secrets: EngineSecrets): string {
  const c = wgConfigOf(spec);
  const lines = ['set=1', `private_key=${b64ToHex(secrets.privateKey)}`, `listen_port=${c.listenPort}`, `fwmark=${c.fwmark}`, ...awgLines(c.obfuscation), 'replace_peers=true'];
  for (const p of c.peers) lines.push(...peerLines(p, secrets));
  return lines.join('\n') + '\n\n';
}

/**
 * Reconfigure a running engine from `before` to `after` without dropping sessions of peers
 * that remain: peers are updated in place, removed peers are removed by key. The private
 * key and listen port are only sent when they changed (either resets every session).
 */
export function deltaSetText(before: EngineSpec, after: EngineSpec, secrets: EngineSecrets): string {
  const b = wgConfigOf(before);
  const a = wgConfigOf(after);
  const lines = ['set=1'];
  if (b.privateKey !== a.privateKey) lines.push(`private_key=${b64ToHex(secrets.privateKey)}`);
  if (b.listenPort !== a.listenPort) lines.push(`listen_port=${a.listenPort}`);
  if (b.fwmark !== a.fwmark) lines.push(`fwmark=${a.fwmark}`);
  if (JSON.stringify(b.obfuscation ?? {}) !== JSON.stringify(a.obfuscation ?? {})) lines.push(...awgLines(a.obfuscation));
  const keep = new Set(a.peers.map((p) => p.publicKey));
  for (const p of b.peers) if (!keep.has(p.publicKey)) lines.push(`public_key=${b64ToHex(p.publicKey)}`, 'remove=true');
  const old = new Map(b.peers.map((p) => [p.publicKey, JSON.stringify(p)]));
  for (const p of a.peers) if (old.get(p.publicKey) !== JSON.stringify(p)) lines.push(...peerLines(p, secrets));
  return lines.join('\n') + '\n\n';
}
