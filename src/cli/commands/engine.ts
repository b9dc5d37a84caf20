/**
 * `awg engine --link L --uapi PATH`: one userspace WireGuard/AmneziaWG engine attached to
 * the persistent TUN L, configured by the UAPI text on stdin (secrets never in argv/env),
 * then served on the UAPI socket PATH so `wg show`/`wg set` and the engine driver reach it.
 * Prints `ready` on stdout once listening. Internal: started by the engine driver.
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

export interface EngineOptions {
  link: string;
  uapi: string;
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

export async function engineCommand(io: Io, o: EngineOptions): Promise<number> {
  const input = await readStdin();
  // proxy tunnels (socks5/http): --link names the tunnel, --uapi is the control socket. The
  // proxy runtime and the endpoint resolver (zod, the DNS drivers) load only when used: a
  // WireGuard engine without them is ~16 MiB smaller (bench/RESULTS.md, Step 10 memory)
  if (input.trimStart().startsWith('{')) {
    const { isProxyEngineInput, runDetachedProxyEngine } =
      await import('../../resources/engine/proxy-host.js');
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
  io.out('ready\n');
  log('info', `engine up on ${o.link}, UAPI ${o.uapi}`);
  await new Promise(() => {});
  return 0;
}
