/**
 * Proxy engines detached from the daemon (`awg apply` without one): process-host.ts spawns
 * `awg engine --link <tunnel> --uapi <control socket>` with the spec (and password) as JSON on
 * stdin; the engine runs the runtime of proxy-host.ts and answers `get=1` on the control
 * socket with its live spec and stats.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { levelLog } from '../../util/log.js';
import { FileStateStore } from '../../util/state.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import type { ProxyEngineSpec } from '../../model/resources.js';
import type { ApplyContext } from '../driver.js';
import { EndpointResolver, engineResolver } from '../endpoints.js';
import { uapiGet, parseGet } from './uapi-client.js';
import { uapiReply } from '../../dataplane/device/uapi-text.js';
import {
  liveSpecOf,
  passwordFingerprint,
  proxyPasswordFor,
  proxyStatsRow,
  startProxyRuntime,
  type ProxyTunnelStatsRow,
} from './proxy-host.js';

/** Control socket of a detached proxy engine: in the state directory, one per tunnel. */
export function detachedControlPath(stateDir: string, tunnel: string): string {
  return join(stateDir, `proxy-${tunnel}.sock`);
}

/** What process-host.ts spawns for a proxy spec: `awg engine --link <tunnel> --uapi <control socket>` with `text` on stdin. */
export function detachedLaunch(
  spec: ProxyEngineSpec,
  ctx: ApplyContext,
): { link: string; uapiPath: string; text: string } {
  const password = proxyPasswordFor(spec, ctx.secrets);
  return {
    link: spec.tunnel,
    uapiPath: detachedControlPath(ctx.state.dir, spec.tunnel),
    text: JSON.stringify({
      proxyEngine: spec,
      ...(password !== undefined ? { password } : {}),
      passwordFingerprint: passwordFingerprint(spec, password, fingerprintKeyOf(ctx.state)),
    }),
  };
}

/** The live spec of a detached proxy engine (from its control socket), or undefined. */
export async function detachedLiveSpec(controlPath: string): Promise<ProxyEngineSpec | undefined> {
  try {
    const got = parseGet(await uapiGet(controlPath));
    return got.device.spec ? (JSON.parse(got.device.spec) as ProxyEngineSpec) : undefined;
  } catch {
    return undefined;
  }
}

/** Stats of a detached proxy engine, or undefined when it does not answer. */
export async function detachedStats(controlPath: string): Promise<ProxyTunnelStatsRow | undefined> {
  try {
    const got = parseGet(await uapiGet(controlPath));
    return got.device.stats ? (JSON.parse(got.device.stats) as ProxyTunnelStatsRow) : undefined;
  } catch {
    return undefined;
  }
}

export function isProxyEngineInput(stdin: string): boolean {
  return stdin.trimStart().startsWith('{');
}

/**
 * The body of `awg engine` for a proxy spec (JSON on stdin): run the runtime, answer on the
 * control socket, log health changes (the engine log in the state directory is where a
 * one-shot apply's user finds "the proxy refused our credentials"). Prints `ready`.
 */
export async function runDetachedProxyEngine(
  out: (s: string) => void,
  controlPath: string,
  stdin: string,
): Promise<never> {
  const input = JSON.parse(stdin) as {
    proxyEngine: ProxyEngineSpec;
    password?: string;
    passwordFingerprint?: string;
  };
  const spec = input.proxyEngine;
  const { createLogger } = await import('../../util/logger.js');
  const log = levelLog(createLogger({ component: 'engine', base: { tunnel: spec.tunnel } }));
  // the proxy's host name: the answers the starting `awg apply` kept (AWG_STATE_DIR), read only
  const stateDir = process.env.AWG_STATE_DIR;
  const r = engineResolver(
    new EndpointResolver({
      ...(stateDir ? { state: new FileStateStore(stateDir) } : {}),
      persist: false,
    }),
  );
  // the launcher's fingerprint of the password (it holds the key); without one: `unknown`, which plans a restart
  const started = await startProxyRuntime(
    spec,
    input.password,
    input.passwordFingerprint ?? 'unknown',
    { log, resolveServer: (h) => r.resolve(h, { mark: spec.config.fwmark }) },
  );
  rmSync(controlPath, { force: true });
  const server: Server = createServer((s) => {
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('utf8');
      if (!buf.endsWith('\n\n')) return;
      if (buf.startsWith('get=1\n')) {
        const live = liveSpecOf(started.spec, started.passwordFingerprint);
        s.end(
          uapiReply([
            ['spec', JSON.stringify(live)],
            ['stats', JSON.stringify(proxyStatsRow(started))],
          ]),
        );
      } else s.end(uapiReply([], 22));
    });
  });
  server.on('error', (e) => log('warn', `control socket ${controlPath}: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(controlPath, () => resolve());
  });
  let closing = false;
  const shutdown = async (code: number) => {
    if (closing) return;
    closing = true;
    server.close();
    rmSync(controlPath, { force: true });
    await started.runtime.stop().catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGHUP', () => {});
  out('ready\n');
  return await new Promise<never>(() => {});
}
