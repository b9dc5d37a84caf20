/**
 * `awg engine --link L --uapi PATH`: one userspace WireGuard/AmneziaWG engine attached to
 * the persistent TUN L, configured by the UAPI text on stdin (secrets never in argv/env),
 * then served on the UAPI socket PATH so `wg show`/`wg set` and the engine driver reach it.
 * Prints `ready` on stdout once listening. Internal: started by the engine driver.
 * `awg engine -f IFACE` follows wireguard-go's command line instead (an external engine,
 * `engine: {external: …}`): no stdin, the socket in $AWG_UAPI_DIR (default
 * /var/run/wireguard), configured only through it.
 * A proxy tunnel (socks5/http) sends its engine spec as JSON instead: then L is the tunnel
 * name and PATH its control socket (resources/engine/proxy-host.ts).
 */
import { createEngine } from '../../dataplane/engine.js';
import { setCryptoPoolLog } from '../../dataplane/crypto/pool.js';
import { loadEngineIo } from '../../resources/registry.js';
import { uapiLine } from '../../dataplane/device/uapi-text.js';
import { levelLog } from '../../util/log.js';
import { createLogger } from '../../util/logger.js';
import type { Io } from '../output.js';
import { setCrashLog } from '../crash.js';
import type { Resolver } from '../../dataplane/device/resolver.js';
import { FileStateStore } from '../../util/state.js';
import { join } from 'node:path';

export interface EngineOptions {
  link?: string;
  uapi?: string;
  /** `-f IFACE`: wireguard-go's convention (foreground, configured over UAPI only) */
  foreground?: string;
  /** IFACE without -f: wireguard-go daemonizes then, unless WG_PROCESS_FOREGROUND=1 */
  iface?: string;
}

/** wireguard-go's socket directory; `AWG_UAPI_DIR` moves it (tests, amneziawg-go's own) */
const UAPI_DIR_DEFAULT = '/var/run/wireguard';

/**
 * What `awg engine` was asked to run: stdin mode (`--link L --uapi P`, the configuration on
 * stdin, `ready` on stdout) or the wireguard-go convention (`-f IFACE`: no stdin, an empty
 * device until a UAPI `set=1` configures it), so awg can serve as an external engine.
 */
export function engineMode(
  o: EngineOptions,
  env: NodeJS.ProcessEnv,
): { link: string; uapi: string; stdin: boolean } | { error: string } {
  const iface = o.foreground ?? o.iface;
  if (iface !== undefined) {
    if (o.link !== undefined || o.uapi !== undefined)
      return { error: 'give either -f IFACE or --link and --uapi, not both' };
    if (o.foreground === undefined && env.WG_PROCESS_FOREGROUND !== '1')
      return {
        error: 'awg engine runs in the foreground only: use -f IFACE (or WG_PROCESS_FOREGROUND=1)',
      };
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(iface) || iface === '.' || iface === '..')
      return {
        error: `${JSON.stringify(iface)} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`,
      };
    return {
      link: iface,
      uapi: join(env.AWG_UAPI_DIR || UAPI_DIR_DEFAULT, `${iface}.sock`),
      stdin: false,
    };
  }
  if (o.link === undefined || o.uapi === undefined)
    return { error: 'give --link NAME and --uapi PATH (configuration on stdin), or -f IFACE' };
  return { link: o.link, uapi: o.uapi, stdin: true };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * TEST-ONLY: `AWG_TEST_REKEY_AFTER_TIME_S=N` makes the engine rekey after N seconds instead
 * of 120 (as the AmneziaWG 3.x `rekey_after_time` interface key), so interop tests observe a
 * rekey in seconds. Never set it in production; nothing else reads it.
 */
function withTestKnobs(text: string): string {
  const s = process.env.AWG_TEST_REKEY_AFTER_TIME_S;
  if (!s || !/^[1-9]\d{0,4}$/.test(s)) return text;
  const lines = text.split('\n');
  const at = lines[0] === 'set=1' ? 1 : 0;
  lines.splice(at, 0, uapiLine('rekey_after_time', s));
  return lines.join('\n');
}

export async function engineCommand(io: Io, opts: EngineOptions): Promise<number> {
  const mode = engineMode(opts, process.env);
  if ('error' in mode) {
    io.err(`awg engine: ${mode.error}\n`);
    return 2;
  }
  const o = { link: mode.link, uapi: mode.uapi };
  // -f: an empty device, configured over its UAPI socket like wireguard-go
  const input = mode.stdin ? await readStdin() : 'set=1\n\n';
  // an empty stdin: the process that started us died before it gave the configuration
  // (process-host.ts records us first); an engine without one would hold the TUN for nothing
  if (mode.stdin && input.trim() === '') {
    io.err('awg engine: no configuration on stdin\n');
    return 2;
  }
  // proxy tunnels (socks5/http): --link names the tunnel, --uapi is the control socket. The
  // proxy runtime and the endpoint resolver (zod, the DNS drivers) load only when used: a
  // WireGuard engine without them is markedly smaller (bench/RESULTS.md, Step 10 memory)
  if (input.trimStart().startsWith('{')) {
    const { isProxyEngineInput, runDetachedProxyEngine } =
      await import('../../resources/engine/proxy-detached.js');
    if (isProxyEngineInput(input)) return runDetachedProxyEngine((s) => io.out(s), o.uapi, input);
  }
  const text = withTestKnobs(input);
  // stderr is the engine's log file in the state directory (process-host.ts)
  // host-name endpoints: the answers the starting `awg apply` kept in its state directory
  // (AWG_STATE_DIR, set by the engine driver) and the host resolvers it found, read only
  const stateDir = process.env.AWG_STATE_DIR;
  let loaded: Promise<Resolver> | undefined;
  const resolver: Resolver = {
    async resolve(host, ctx) {
      loaded ??= import('../../resources/endpoints.js').then(
        ({ EndpointResolver, engineResolver }) =>
          engineResolver(
            new EndpointResolver({
              ...(stateDir ? { state: new FileStateStore(stateDir) } : {}),
              persist: false,
            }),
          ),
      );
      return (await loaded).resolve(host, ctx);
    },
  };
  const logger = createLogger({ component: 'engine', base: { link: o.link } });
  setCrashLog((what, err) =>
    logger.fatal({ err }, `${what}: ${err instanceof Error ? err.message : String(err)}; exiting`),
  );
  const log = levelLog(logger);
  setCryptoPoolLog(log);
  const engine = createEngine(o.link, await loadEngineIo(), { log, resolver });
  // the device emits it after the packets that waited for the handshake, and the peer's first
  // answers to them (HANDSHAKE_EVENT_DELAY_MS): the log write no longer delays them
  engine.device.on('handshake', (e) => {
    log(
      'info',
      `handshake with ${Buffer.from(e.publicKey).toString('base64')} (${e.initiator ? 'initiator' : 'responder'})`,
    );
  });
  let closing = false;
  async function shutdown(code: number): Promise<void> {
    if (closing) return;
    closing = true;
    await engine.close();
    process.exit(code);
  }
  engine.onTunError((e) => {
    log('warn', `tun: ${e.message}; exiting`);
    void shutdown(1);
  });
  await engine.start(text, { uapiPath: o.uapi });
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGHUP', () => {});
  // where the kernel names the TUN itself (a macOS utun), the drivers find it by the link
  if (engine.tun.name !== o.link && stateDir) {
    const { recordUtun } = await import('../../platform/darwin/utun.js');
    recordUtun(new FileStateStore(stateDir), o.link, { ifname: engine.tun.name, pid: process.pid });
  }
  if (mode.stdin) io.out('ready\n');
  log('info', `engine up on ${o.link}, UAPI ${o.uapi}`);
  await new Promise(() => {});
  return 0;
}
