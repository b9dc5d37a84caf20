/**
 * Shared by the daemon netns tests: two namespaces joined by a veth, a peer served by
 * `awg apply` in one, `awg up --json` running in the other, its events parsed from stdout.
 */
import { expect } from 'vitest';
import type { DaemonEvent } from '../../src/daemon/core.js';
import { awg, awgArgv, show, wgKeyPair, writeConfig, type AwgEnv } from '../helpers/awg.js';
import { createNetns, nsSpawn, run, vethPair, type NsProcess } from '../helpers/netns.js';

export interface Topology {
  client: string;
  peer: string;
  clientIf: string;
  peerIf: string;
}

export interface Keys {
  client: { privateKey: string; publicKey: string };
  peer: { privateKey: string; publicKey: string };
}

export const PEER_UNDERLAY = '10.200.9.2';
/** the endpoint: an address on the peer's loopback, reached through the client's default route */
export const PEER_ENDPOINT = '10.200.10.2';
export const CLIENT_TUN = '10.200.50.1';
export const PEER_TUN = '10.200.50.2';

export function newKeys(): Keys {
  return { client: wgKeyPair(), peer: wgKeyPair() };
}

export function peerConfig(k: Keys): string {
  return `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${k.peer.privateKey}"
    addresses: [${PEER_TUN}/24]
    listenPort: 51820
    peers:
      - publicKey: "${k.client.publicKey}"
        allowedIPs: [${CLIENT_TUN}/32]
`;
}

export function clientConfig(
  k: Keys,
  opts: {
    extraAllowed?: string[];
    killSwitch?: boolean;
    keepalive?: number;
    endpoint?: string;
  } = {},
): string {
  const allowed = [`${PEER_TUN.replace(/\.\d+$/, '.0')}/24`, ...(opts.extraAllowed ?? [])];
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${k.client.privateKey}"
    addresses: [${CLIENT_TUN}/24]
    peers:
      - publicKey: "${k.peer.publicKey}"
        endpoint: ${opts.endpoint ?? PEER_ENDPOINT}:51820
        allowedIPs: [${allowed.join(', ')}]
${opts.keepalive ? `        persistentKeepalive: ${opts.keepalive}\n` : ''}${opts.killSwitch ? 'killSwitch: on\n' : ''}`;
}

/**
 * The two namespaces the daemon tests start from: `<prefix>-c`, the client, whose default
 * route goes through the peer, and `<prefix>-p`, the peer, with PEER_ENDPOINT on its loopback;
 * a veth between them. The peer is started by the caller (startPeer) once the topology is
 * kept, so that its clean-up removes the namespaces should the start fail.
 */
export async function createDaemonTopology(prefix: string): Promise<Topology> {
  const client = await createNetns(`${prefix}-c`);
  const peer = await createNetns(`${prefix}-p`);
  const v = await vethPair(client, peer, {
    addrA: '10.200.9.1/24',
    addrB: `${PEER_UNDERLAY}/24`,
  });
  await run('ip', ['-n', peer, 'addr', 'add', `${PEER_ENDPOINT}/32`, 'dev', 'lo']);
  await run('ip', ['-n', client, 'route', 'add', 'default', 'via', PEER_UNDERLAY]);
  return { client, peer, clientIf: v.ifA, peerIf: v.ifB };
}

/** `awg apply` of the peer config in the peer namespace (its own env: state, UAPI dir). */
export async function startPeer(t: Topology, pe: AwgEnv, k: Keys): Promise<void> {
  const cfg = writeConfig(pe, 'peer.yaml', peerConfig(k));
  // no retry: a detached engine that does not become ready is a failure to see, not hide
  const r = await awg(t.peer, pe, ['apply', '-f', cfg]);
  expect(r.code, show(r)).toBe(0);
}

export interface Up {
  proc: NsProcess;
  events(): (DaemonEvent & Record<string, unknown>)[];
  /** resolves with the first event after index `from` that matches */
  waitEvent(
    pred: (e: DaemonEvent) => boolean,
    from?: number,
    timeoutMs?: number,
  ): Promise<DaemonEvent>;
  mark(): number;
}

/**
 * `awg up -f cfg --json` in `ns`. `connectorFd`: a NETLINK_CONNECTOR socket opened in the
 * initial namespace (openConnectorSocket()), handed over as fd 3 with AWG_PROC_CONNECTOR_FD=3
 * so the daemon's process watcher works from inside the test namespace.
 */
export function startUp(
  ns: string,
  e: AwgEnv,
  cfg: string,
  extra: string[] = [],
  opts: { connectorFd?: number } = {},
): Up {
  const argv = awgArgv(ns, e, ['up', '-f', cfg, '--json', '--state-dir', e.stateDir, ...extra], {
    noStateDir: true,
  });
  // argv = nsenter --net=… -- node …
  const env = opts.connectorFd !== undefined ? { ...e.env, AWG_PROC_CONNECTOR_FD: '3' } : e.env;
  const proc = nsSpawn(ns, argv[3]!, argv.slice(4), {
    env,
    ...(opts.connectorFd !== undefined ? { fds: [opts.connectorFd] } : {}),
  });
  return { proc, ...upEvents(proc) };
}

/** The events an `awg up --json` process printed, and a wait for the next matching one. */
export function upEvents(proc: NsProcess, defaultTimeoutMs = 20_000): Omit<Up, 'proc'> {
  const events = () =>
    proc
      .output()
      .split('\n')
      .flatMap((l) => {
        if (!l.startsWith('{')) return [];
        try {
          const j = JSON.parse(l) as DaemonEvent & Record<string, unknown>;
          return typeof j.at === 'string' ? [j] : [];
        } catch {
          return [];
        }
      });
  return {
    events,
    mark: () => events().length,
    async waitEvent(pred, from = 0, timeoutMs = defaultTimeoutMs) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = events().slice(from).find(pred);
        if (hit) return hit;
        if (Date.now() > end)
          throw new Error(`no matching event within ${timeoutMs} ms; output:\n${proc.output()}`);
        // a SIGKILL leaves exitCode null: the signal ends the wait as well
        if (proc.child.exitCode !== null || proc.child.signalCode !== null)
          throw new Error(
            `awg up exited ${proc.child.exitCode ?? proc.child.signalCode}:\n${proc.output()}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

export const converged = (e: DaemonEvent) =>
  e.type === 'reconcile-finished' && (e.outcome === 'converged' || e.outcome === 'unchanged');

/** Poll `fn` until it returns true (generous timeout; never a timing assertion). */
export async function eventually(
  fn: () => Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not true within ${timeoutMs} ms: ${what}`);
}
