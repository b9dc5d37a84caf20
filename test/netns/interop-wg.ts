/**
 * Shared pieces of the data-plane interop tests and benchmarks: Debian `wireguard-go` in a
 * test namespace, `wg show` dumps (also against our own UAPI socket), awg tunnel configs
 * and ping probes. Traffic only between namespaces the caller created.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsExec, nsSpawn, run, type NsProcess } from '../helpers/netns.js';

export const WG_RUN_DIR = '/var/run/wireguard';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value or `ms` pass; returns the last value. */
export async function waitFor<T>(fn: () => Promise<T>, ms: number, every = 250): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!v && Date.now() < end) {
    await sleep(every);
    v = await fn();
  }
  return v;
}

export interface WgGo {
  iface: string;
  proc: NsProcess;
  stop(): Promise<void>;
}

/**
 * Start Debian's wireguard-go in the foreground inside `ns` with interface `iface` (a
 * host-wide unique name: its UAPI socket lives in the shared /var/run/wireguard) and wait
 * for its socket. `stop()` ends it; wireguard-go then removes the TUN and its socket.
 * `ownSession`: in a session of its own (`setsid`, which execs it: the pid stays), so an
 * autogroup of its own, as `awg apply` starts our engine (a benchmark's anchor).
 */
export function startWireguardGo(
  ns: string,
  iface: string,
  o: { ownSession?: boolean | undefined } = {},
): Promise<WgGo> {
  return startUserspaceWg(ns, iface, WG_RUN_DIR, {
    cmd: o.ownSession ? 'setsid' : 'wireguard-go',
    args: [...(o.ownSession ? ['wireguard-go'] : []), '-f', iface],
    // wireguard-go refuses to start on kernels with the WireGuard module otherwise
    env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
  });
}

export const AWG_GO_RUN_DIR = '/var/run/amneziawg';

/**
 * Start an amneziawg-go binary (`bin`, a path) in the foreground inside `ns`, as
 * `startWireguardGo` does (`ownSession` likewise); its UAPI socket is
 * /var/run/amneziawg/IFACE.sock.
 */
export function startAmneziawgGo(
  ns: string,
  iface: string,
  bin: string,
  o: { ownSession?: boolean | undefined } = {},
): Promise<WgGo> {
  return startUserspaceWg(ns, iface, AWG_GO_RUN_DIR, {
    cmd: o.ownSession ? 'setsid' : bin,
    args: [...(o.ownSession ? [bin] : []), iface],
    env: { WG_PROCESS_FOREGROUND: '1' },
  });
}

async function startUserspaceWg(
  ns: string,
  iface: string,
  runDir: string,
  c: { cmd: string; args: string[]; env: NodeJS.ProcessEnv },
): Promise<WgGo> {
  mkdirSync(runDir, { recursive: true });
  const sock = join(runDir, `${iface}.sock`);
  rmSync(sock, { force: true });
  const proc = nsSpawn(ns, c.cmd, c.args, {
    env: { ...process.env, ...c.env, LOG_LEVEL: 'error' },
  });
  for (let i = 0; i < 200 && !existsSync(sock); i++) {
    if (proc.child.exitCode !== null) break;
    await sleep(25);
  }
  if (!existsSync(sock)) {
    await proc.kill(500);
    throw new Error(`${[c.cmd, ...c.args].join(' ')} did not start: ${proc.output()}`);
  }
  return {
    iface,
    proc,
    async stop() {
      await proc.kill(2000);
      rmSync(sock, { force: true });
    },
  };
}

export interface WgPeerDump {
  publicKey: string;
  endpoint: string;
  allowedIps: string;
  latestHandshake: number;
  rx: number;
  tx: number;
  keepalive: string;
}

export function parseWgDump(text: string): { listenPort: number; peers: WgPeerDump[] } {
  const lines = text.trim().split('\n').filter(Boolean);
  const head = (lines[0] ?? '').split('\t');
  const peers = lines.slice(1).map((l) => {
    const f = l.split('\t');
    return {
      publicKey: f[0]!,
      endpoint: f[2]!,
      allowedIps: f[3]!,
      latestHandshake: Number(f[4]),
      rx: Number(f[5]),
      tx: Number(f[6]),
      keepalive: f[7]!,
    };
  });
  return { listenPort: Number(head[2]), peers };
}

/** `wg show IFACE dump` of wireguard-go (or any socket in /var/run/wireguard). */
export async function wgDump(ns: string, iface: string): Promise<ReturnType<typeof parseWgDump>> {
  return parseWgDump((await nsExec(ns, 'wg', ['show', iface, 'dump'])).stdout);
}

/**
 * `wg ARGS` against the sockets in `uapiDir`: wg only looks in /var/run/wireguard, so it
 * runs in a private mount namespace with `uapiDir` bind-mounted there (the host's
 * directory is untouched).
 */
export async function wgVia(ns: string, uapiDir: string, args: string[]): Promise<string> {
  mkdirSync(WG_RUN_DIR, { recursive: true });
  const r = await run('unshare', [
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$1" /var/run/wireguard && shift && exec nsenter --net="$0" -- wg "$@"',
    `/var/run/netns/${ns}`,
    uapiDir,
    ...args,
  ]);
  return r.stdout;
}

/** `wg setconf` from an INI written to `dir` (keys never in argv). */
export async function wgSetconf(
  ns: string,
  iface: string,
  dir: string,
  ini: string,
): Promise<void> {
  const p = join(dir, `${iface}.conf`);
  writeFileSync(p, ini, { mode: 0o600 });
  await nsExec(ns, 'wg', ['setconf', iface, p]);
}

/** Address `cidr` on wireguard-go's interface, link up. */
export async function wgGoAddress(ns: string, iface: string, cidr: string): Promise<void> {
  await nsExec(ns, 'ip', ['addr', 'add', cidr, 'dev', iface]);
  await nsExec(ns, 'ip', ['link', 'set', iface, 'mtu', '1420', 'up']);
}

/** True when at least one of `count` pings (1 s apart, 1 s wait) is answered. */
export async function pingOk(ns: string, addr: string, count = 3): Promise<boolean> {
  const r = await nsExec(ns, 'ping', ['-n', '-c', String(count), '-i', '0.3', '-W', '1', addr], {
    allowFail: true,
  });
  return r.code === 0;
}

/** Retry ping batches until one is answered or `ms` pass. */
export function pingEventually(ns: string, addr: string, ms: number): Promise<boolean> {
  return waitFor(() => pingOk(ns, addr, 2), ms, 100);
}

export interface AwgTunnelYaml {
  tunnel: string;
  privateKey: string;
  address: string;
  listenPort?: number;
  peerPublicKey: string;
  endpoint?: string | undefined;
  allowedIPs: string[];
  keepalive?: number | undefined;
  mtu?: number;
  obfuscation?: Record<string, number | string | boolean>;
}

/** A one-tunnel awg config (routes only through the tunnel's own subnet). */
export function awgConfig(t: AwgTunnelYaml): string {
  const obf = t.obfuscation
    ? `    obfuscation:\n${Object.entries(t.obfuscation)
        .map(([k, v]) => `      ${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`)
        .join('\n')}\n`
    : '';
  return `version: 1
tunnels:
  ${t.tunnel}:
    type: ${t.obfuscation ? 'amneziawg' : 'wireguard'}
    privateKey: "${t.privateKey}"
    addresses: [${t.address}]
${t.listenPort ? `    listenPort: ${t.listenPort}\n` : ''}${t.mtu ? `    mtu: ${t.mtu}\n` : ''}${obf}    peers:
      - publicKey: "${t.peerPublicKey}"
${t.endpoint ? `        endpoint: ${t.endpoint}\n` : ''}        allowedIPs: [${t.allowedIPs.join(', ')}]
${t.keepalive ? `        persistentKeepalive: ${t.keepalive}\n` : ''}`;
}

/** user+system CPU seconds of `pid` so far (/proc/PID/stat utime+stime). */
export function cpuSeconds(pid: number, readFile: (p: string) => string): number {
  const s = readFile(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after ")" start at field 3 (state): utime is field 14, stime 15
  return (Number(f[11]) + Number(f[12])) / 100;
}
