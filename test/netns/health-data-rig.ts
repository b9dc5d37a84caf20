/**
 * The data-path fault rig shared by test/netns/health-data.test.ts (2 toggles in CI) and
 * bench/health-flap.ts (the 5-minute no-flap run): perapp-topology.ts's topology with t1's
 * peer replaced by a real external WireGuard — upstream amneziawg-go when
 * AWG_TEST_AMNEZIAWG_GO_DIR names a directory with one of its builds (the newest found), else
 * Debian's `wireguard-go` — configured over its UAPI socket; the awg daemon (awg's own engine)
 * on the client (AWG_HEALTH_CLIENT_ENGINE=external: Debian's wireguard-go as the client's
 * engine) with an allow-direct rule and a failover rule on t1; both apps sending all the
 * time (the traffic that makes a dead path visible); `awg events --json` read as it comes.
 *
 * The fault: an nft rule in peer1's namespace drops UDP to the WireGuard port whose payload
 * starts with 4 (a transport message: data or keepalive); handshakes (types 1-3) pass.
 * Traffic only between the namespaces the topology makes.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { uapiSet } from '../../src/resources/engine/uapi-client.js';
import { AWG_BIN, type AwgEnv, cleanupAwgEnv, makeAwgEnv } from '../helpers/awg.js';
import { nsExec, nsSpawn, sweepStaleNetns, type NsProcess } from '../helpers/netns.js';
import { cgroupOf } from '../helpers/procs.js';
import { AWG_GO_RUN_DIR, WG_RUN_DIR, startAmneziawgGo, startWireguardGo } from './interop-wg.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  pathOf,
  startAgent,
  startDaemon,
  WG_PORT,
  type Agent,
  type Daemon,
  type Path,
  type PerAppTopology,
} from './perapp-topology.js';

/** amneziawg-go builds, newest first (the directory's names, as import-vpn.test.ts expects) */
const AWG_GO_BINARIES = ['amneziawg-go-v3.1', 'amneziawg-go-v0.2.19', 'amneziawg-go-v0.2.12'];

/** the real peer t1 talks to: amneziawg-go from AWG_TEST_AMNEZIAWG_GO_DIR, else wireguard-go */
export function peerEngine(): { name: string; bin?: string } {
  const dir = process.env.AWG_TEST_AMNEZIAWG_GO_DIR;
  if (!dir) return { name: 'wireguard-go (Debian)' };
  const bin = AWG_GO_BINARIES.find((b) => existsSync(join(dir, b)));
  if (!bin) throw new Error(`AWG_TEST_AMNEZIAWG_GO_DIR=${dir} holds none of ${AWG_GO_BINARIES}`);
  return { name: bin, bin: join(dir, bin) };
}

/**
 * The client's engine: awg's own, or (AWG_HEALTH_CLIENT_ENGINE=external, by hand) Debian's
 * wireguard-go as `engine: {external: …}` — the byte-counter path and the probe through the link
 */
function clientEngine(): { extra?: string } {
  const e = process.env.AWG_HEALTH_CLIENT_ENGINE;
  if (!e || e === 'embedded') return {};
  if (e !== 'external') throw new Error(`AWG_HEALTH_CLIENT_ENGINE=${e}: embedded or external`);
  return { extra: `    engine: { external: ${whichWireguardGo()} }\n` };
}

function whichWireguardGo(): string {
  const dir = (process.env.PATH ?? '').split(':').find((d) => existsSync(join(d, 'wireguard-go')));
  if (!dir) throw new Error('wireguard-go is not on PATH');
  return join(dir, 'wireguard-go');
}

export interface TunnelEvent {
  state: string;
  reason?: string;
  /** ms (Unix) of the event's `at` */
  atMs: number;
}

export interface HealthRig {
  /** the peer's engine, as reports name it */
  peer: string;
  faultOn(): Promise<void>;
  faultOff(): Promise<void>;
  /** t1's `tunnel` events so far, in order */
  events(): TunnelEvent[];
  /** the event number `n` (0-based) once it came */
  event(n: number, what: string, timeoutMs: number): Promise<TunnelEvent>;
  /** which way the app's next UDP probe went */
  pathOfApp(n: 'ad' | 'fo'): Promise<Path>;
  stop(): Promise<void>;
}

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

export async function startHealthRig(): Promise<HealthRig> {
  const engine = peerEngine();
  await sweepStaleNetns();
  const t: PerAppTopology = await createPerAppTopology();
  const ce: AwgEnv = makeAwgEnv();
  let d: Daemon | undefined;
  let events: NsProcess | undefined;
  let peer: Awaited<ReturnType<typeof startWireguardGo>> | undefined;
  const agents: Agent[] = [];
  let pumping = false;
  let pump: Promise<void> | undefined;
  const stop = async () => {
    pumping = false;
    await pump?.catch(() => undefined);
    await events?.kill();
    for (const a of agents) await a.stop();
    await d?.stop();
    await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
      () => undefined,
    );
    await peer?.stop();
    await t.destroy();
    cleanupAwgEnv(ce);
  };
  try {
    // t1's peer: the real engine in place of awg's own
    await t.stopPeer(1);
    const iface = `hd${randomBytes(3).toString('hex')}`;
    peer = engine.bin
      ? await startAmneziawgGo(t.peer1, iface, engine.bin)
      : await startWireguardGo(t.peer1, iface);
    const sock = join(engine.bin ? AWG_GO_RUN_DIR : WG_RUN_DIR, `${iface}.sock`);
    const reply = await uapiSet(
      sock,
      `set=1\nprivate_key=${hex(t.keys.peer1.privateKey)}\nlisten_port=${WG_PORT}\n` +
        `public_key=${hex(t.keys.client1.publicKey)}\nallowed_ip=${ADDR.tun1Client}/32\n\n`,
    );
    if (!reply.includes('errno=0')) throw new Error(`${engine.name} refused its config: ${reply}`);
    await nsExec(t.peer1, 'ip', ['addr', 'add', `${ADDR.tun1Peer}/24`, 'dev', iface]);
    await nsExec(t.peer1, 'ip', ['link', 'set', iface, 'mtu', '1420', 'up']);

    const dir = (n: string) => `${t.apps.appsDir}/${n}`;
    const cfg = join(ce.dir, 'client.yaml');
    writeFileSync(
      cfg,
      `version: 1
${clientTunnels(t.keys, { keepalive: 1, ...clientEngine() })}rules:
  - name: ad
    match: { dir: ${dir('ad')} }
    target: t1
    fallback: allow-direct
  - name: fo-a
    match: { dir: ${dir('fo')} }
    target: t1
    fallback: failover
  - name: fo-b
    match: { dir: ${dir('fo')} }
    target: t2
    fallback: failover
default: direct
`,
    );
    d = await startDaemon(t.client, ce, cfg);
    const ad = await startAgent(t.client, t.apps.app('ad'), t.apps.script);
    agents.push(ad);
    const fo = await startAgent(t.client, t.apps.app('fo'), t.apps.script);
    agents.push(fo);
    await eventually(() => cgroupOf(fo.pid) === `/${ce.cgroupRoot}/fo-a`, 'fo placed in fo-a');
    const pathOfApp = async (n: 'ad' | 'fo') =>
      pathOf((await (n === 'ad' ? ad : fo).probe(`udp:${n === 'ad' ? 8001 : 8003}`)).from);
    await eventually(async () => (await pathOfApp('ad')) === 't1', 'ad through t1', 60_000);
    const line = async () => {
      const r = await d!.cli(['status', '--json']);
      return r.code === 0
        ? r
            .json<{ tunnels: { name: string; health?: string }[] }>()
            .tunnels.find((x) => x.name === 't1')
        : undefined;
    };
    await eventually(async () => (await line())?.health === 'up', 't1 up');
    events = nsSpawn(
      t.client,
      process.execPath,
      [AWG_BIN, 'events', '--json', '--socket', d.socket],
      { env: ce.env },
    );
    // both apps send all the time: every 200 ms a UDP probe each (a probe that gets no answer
    // resends every 500 ms until its 4 s timeout)
    pumping = true;
    pump = (async () => {
      while (pumping) {
        await Promise.all([ad.probe('udp:8001'), fo.probe('udp:8003')]);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    const nft = (args: string) => nsExec(t.peer1, 'nft', args.split(' '));
    const tunnelEvents = (): TunnelEvent[] =>
      events!
        .output()
        .split('\n')
        .filter((l) => l.includes('"type":"tunnel"') && l.includes('"tunnel":"t1"'))
        .map((l) => JSON.parse(l) as { state: string; reason?: string; at: string })
        .map((e) => ({
          state: e.state,
          ...(e.reason ? { reason: e.reason } : {}),
          atMs: Date.parse(e.at),
        }));
    return {
      peer: engine.name,
      async faultOn() {
        await nft('add table inet s22fault');
        await nft('add chain inet s22fault in { type filter hook input priority -400 ; }');
        // the UDP payload's first byte (bit 64 of the transport header): the message type
        await nft(`add rule inet s22fault in udp dport ${WG_PORT} @th,64,8 4 drop`);
      },
      async faultOff() {
        await nft('delete table inet s22fault');
      },
      events: tunnelEvents,
      async event(n, what, timeoutMs) {
        const end = Date.now() + timeoutMs;
        for (;;) {
          const e = tunnelEvents()[n];
          if (e) return e;
          if (Date.now() > end)
            throw new Error(
              `no ${what} (t1 event #${n + 1}) within ${timeoutMs} ms; events: ${JSON.stringify(tunnelEvents())}`,
            );
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      pathOfApp,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface Toggle {
  /** ms (Unix) the cycle began (the rule about to go in) */
  startMs: number;
  /** ms from the fault's rule in place to the down event */
  down: number;
  /** ms from the rule removed to the up event */
  up: number;
}

/**
 * One fault cycle: the rule in place until t1 is reported down (and `holdMs` from the start,
 * when given), then removed until it is reported up (and `periodMs` from the start). The
 * cycle's events are event numbers `2i` and `2i + 1` for cycle i: `perToggle` checks that
 * they are the only ones.
 */
export async function toggle(
  rig: HealthRig,
  i: number,
  o: {
    boundMs: number;
    holdMs?: number;
    periodMs?: number;
    afterDown?: () => Promise<void>;
    afterUp?: () => Promise<void>;
  },
): Promise<Toggle> {
  const startMs = Date.now();
  await rig.faultOn();
  const on = Date.now();
  const down = await rig.event(2 * i, 't1 down for no-data', o.boundMs);
  await o.afterDown?.();
  const hold = startMs + (o.holdMs ?? 0) - Date.now();
  if (hold > 0) await new Promise((r) => setTimeout(r, hold));
  await rig.faultOff();
  const off = Date.now();
  const up = await rig.event(2 * i + 1, 't1 back up', o.boundMs);
  await o.afterUp?.();
  const rest = startMs + (o.periodMs ?? 0) - Date.now();
  if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  return { startMs, down: down.atMs - on, up: up.atMs - off };
}

/** each cycle's t1 events (`state/reason`), by time: from its start to the next one's */
export function perToggle(events: readonly TunnelEvent[], toggles: readonly Toggle[]): string[][] {
  return toggles.map((t, i) =>
    events
      .filter(
        (e) => e.atMs >= t.startMs && (i + 1 >= toggles.length || e.atMs < toggles[i + 1]!.startMs),
      )
      .map((e) => `${e.state}/${e.reason ?? ''}`),
  );
}
