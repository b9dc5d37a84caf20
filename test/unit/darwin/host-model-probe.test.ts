/**
 * awg's own sockets through a tunnel on the macOS host model (the real daemon, the darwin
 * platform, the model's utun): a configured health probe, and a list fetched `via` the
 * tunnel. Each socket is pinned to the utun the tunnel's link got (IP_BOUND_IF through the
 * flow router's natives, resources/engine/link-pin.ts), where Linux binds it to the link by
 * name (SO_BINDTODEVICE): on macOS that call does not exist, and no interface is named
 * `awg-home`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { ModelEngines } from '../../helpers/macos-host/engine.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { macConfig } from '../../helpers/macos-host/scenario.js';
import { eventually } from '../../helpers/eventually.js';

let dir: string | undefined;
let server: Server | undefined;
const stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
  server?.close();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** the flow router's natives with a boundTcpFd that records the interface (a plain socket stands in) */
function recordingNatives(pinned: string[]) {
  const unused = () => {
    throw new Error('no connection reaches the router in this test');
  };
  return async () => ({
    sysctl: unused,
    pidPath: unused,
    originalDst: unused,
    boundTcpFd: (ifname: string) => {
      pinned.push(ifname);
      const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new Error(`socket: ${-fd}`);
      return fd;
    },
  });
}

/**
 * The daemon on a model laptop following `config` (written to a temp file), converged once;
 * `pinned`: the interfaces its sockets were pinned to; `utun`: the tunnel's utun
 */
async function converged(config: string, tag: string) {
  dir = mkdtempSync(join(tmpdir(), `awg-machost-${tag}-`));
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, config, { mode: 0o600 });
  const host = MacHost.laptop();
  const pinned: string[] = [];
  const daemon = modelDaemon({
    configPath: file,
    platform: darwinPlatform,
    drivers: { ...createDarwinDrivers({ exec: host }), engine: new ModelEngines(host) },
    exec: host,
    state: new FileStateStore(join(dir, 'state')),
    flowRouter: { natives: recordingNatives(pinned) },
  });
  stops.push(() => daemon.d.stop({ teardown: true }));
  await daemon.d.start();
  expect(await daemon.finished(1)).toMatchObject({ outcome: 'converged' });
  const utuns = [...host.interfaces.keys()].filter((n) => n.startsWith('utun'));
  expect(utuns).toHaveLength(1);
  return { ...daemon, pinned, utun: utuns[0]! };
}

describe('macOS: awg’s own sockets through a tunnel go out on its utun', () => {
  it("tcp: each probe's socket is pinned to the tunnel's utun; the probe passes and the tunnel stays up", async () => {
    let accepted = 0;
    server = createServer((s) => {
      accepted++;
      s.destroy();
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    // the probe under `tunnels.home` (macConfig's tunnel ends at its peers)
    const config = macConfig({ killSwitch: false }).replace(
      '\ndefault: home',
      `\n    health: { probe: { tcp: "127.0.0.1:${port}" }, interval: 1s, timeout: 900ms, failures: 1 }\ndefault: home`,
    );
    expect(config).toContain('health:');
    const { d, events, pinned, utun } = await converged(config, 'probe');
    // two probes passed, each on a socket pinned to the utun
    await eventually(() => expect(accepted).toBeGreaterThanOrEqual(2));
    expect(new Set(pinned)).toEqual(new Set([utun]));
    const home = (await d.status()).tunnels.find((t) => t.name === 'home');
    expect(home?.probe?.failures ?? 0).toBe(0);
    expect(home?.probe?.lastFailure).toBeUndefined();
    expect(events.filter((e) => e.type === 'tunnel' && e.state === 'down')).toEqual([]);
  });

  it('a list fetched `via` the tunnel: its connection is pinned to the utun', async () => {
    const served: string[] = [];
    const http = createHttpServer((q, s) => {
      served.push(q.url ?? '');
      s.end('192.0.2.0/24\n');
    }).listen(0, '127.0.0.1');
    stops.push(() => new Promise((r) => http.close(() => r(undefined))));
    await once(http, 'listening');
    const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/l.txt`;
    const config = macConfig({ killSwitch: false }).replace(
      '\ndefault: home',
      `\nrules:\n  - name: listed\n    to:\n      lists:\n        - { url: "${url}", via: home }\n    target: home\ndefault: home`,
    );
    const { d, pinned, utun } = await converged(config, 'lists');
    const r = await d.updateLists({});
    expect(served).toEqual(['/l.txt']);
    expect(pinned).toEqual([utun]);
    expect(r.results).toMatchObject([{ list: url, result: 'fetched', entries: 1 }]);
  });
});
