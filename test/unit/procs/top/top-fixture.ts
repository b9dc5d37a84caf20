/**
 * Readings and a routing context for the monitor's unit tests: two tunnels (`vpn`, `office`),
 * rules `web` → vpn, `backup` → office, `lan` → direct, cgroup root `awg`.
 */
import type { Config } from '../../../../src/config/schema.js';
import { loadConfigText } from '../../../../src/config/load.js';
import { allocate } from '../../../../src/model/alloc.js';
import type { FlowReading, ProcessInfo, Reading } from '../../../../src/procs/top/reading.js';
import { topContext, type TopContext } from '../../../../src/procs/top/routing.js';
import { wgKeyPair } from '../../../helpers/awg.js';

const k = [wgKeyPair(), wgKeyPair(), wgKeyPair()] as const;

/** the config's text (tests that write it where a last apply recorded it) */
export function topYaml(): string {
  const tunnel = (addr: string, peer: string) => `
    type: wireguard
    privateKey: "${k[0].privateKey}"
    addresses: [${addr}]
    peers:
      - publicKey: "${peer}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [0.0.0.0/0]`;
  const text = `version: 1
tunnels:
  vpn:${tunnel('10.200.50.1/24', k[1].publicKey)}
  office:${tunnel('10.200.51.1/24', k[2].publicKey)}
rules:
  - name: web
    match: { name: firefox }
    target: vpn
  - name: backup
    match: { name: restic }
    target: office
  - name: lan
    match: { name: smbclient }
    target: direct
`;
  return text;
}

export function topConfig(): Config {
  const r = loadConfigText(topYaml(), 'top.yaml');
  if (!r.config) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

export const CONFIG = topConfig();
export const MARKS = Object.fromEntries(
  [...allocate(CONFIG).tunnels].map(([name, ids]) => [name, ids.fwmark]),
) as Record<'vpn' | 'office', number>;

export function context(o: Partial<Parameters<typeof topContext>[1]> = {}): TopContext {
  return topContext(CONFIG, { cgroupRoot: 'awg', tunnelUp: () => true, ...o });
}

export function proc(pid: number, name: string, cgroup?: string): ProcessInfo {
  return {
    pid,
    name,
    exe: `/usr/bin/${name}`,
    uid: 1000,
    ...(cgroup !== undefined ? { cgroup } : {}),
  };
}

let port = 40000;

/** a TCP flow of `pid` (IPv4, a fresh local port), with cumulative counts */
export function flow(
  key: string,
  sent: number,
  received: number,
  o: Partial<FlowReading> = {},
): FlowReading {
  return {
    key,
    proto: 'tcp',
    family: 4,
    local: { addr: '10.0.0.1', port: port++ },
    remote: { addr: '192.0.2.1', port: 443 },
    sent,
    received,
    ...o,
  };
}

export function reading(at: number, flows: FlowReading[], processes: ProcessInfo[]): Reading {
  return { at, flows, processes: new Map(processes.map((p) => [p.pid, p])), warnings: [] };
}
