/**
 * Per-app UDP on macOS, end to end on the host model: the real Daemon hosts the flow router
 * (its UDP relay, resources/flow/flow-udp.ts) and loads the anchor with its UDP rules; an
 * app's datagram goes through the model's PF with PF's states (pf-udp.ts: route-to lo0,
 * `nat` to a loopback port of its own, `rdr` to the router); what PF delivers is sent for
 * real on this host's loopback from that port to the router's socket. The router's system
 * calls are fakes over the model: DIOCNATLOOK answers from the model's PF states, the udp
 * pcblist_n is laid out from a table of app sockets, the pinning of upstream sockets is
 * recorded. The router's upstream datagrams go to local echo servers standing in for the
 * destinations (`internet`), and are put through the model's PF too (root's socket pinned
 * to the rule's interface); the replies come back through the router and the model's PF to
 * the app's address and port, from the destination. Verified on the model only
 * (docs/platform-macos.md): no datagram has crossed a Mac.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import type { DarwinFlowNatives } from '../../../src/resources/flow/flow-router-darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfUdpSend, type UdpFate } from '../../helpers/macos-host/pf-udp.js';
import type { Ep } from '../../helpers/macos-host/pf-states.js';
import { macConfig } from '../../helpers/macos-host/scenario.js';
import { freePort } from '../../helpers/route-servers.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';

const PATHS: Record<number, string> = {
  530: '/Applications/Mail.app/Contents/MacOS/Mail',
  601: '/usr/bin/curl',
  602: '/opt/telemetry/agent',
  603: '/Applications/Notes.app/Contents/MacOS/Notes',
};
const QUIC: Ep = { address: '93.184.216.34', port: 443 };
const STUN: Ep = { address: '203.0.113.50', port: 3478 };
const QUIC6: Ep = { address: '2001:db8:5::1', port: 443 };

const rules = `rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: block
  - name: tools
    match: { dir: /usr/bin }
    target: direct
  - name: telemetry
    match: { dir: /opt/telemetry }
    target: block
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const bound = (type: 'udp4' | 'udp6', address: string, port = 0) =>
  new Promise<Socket>((resolve, reject) => {
    const s = createSocket(type);
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => resolve(s));
  });

/** a UDP echo server standing in for a destination: answers `<name>:<what it got>` */
async function echo(name: string, family: 4 | 6) {
  const seen: string[] = [];
  const s = await bound(family === 6 ? 'udp6' : 'udp4', family === 6 ? '::1' : '127.0.0.1');
  s.on('message', (m, r) => {
    seen.push(m.toString());
    s.send(`${name}:${m.toString()}`, r.port, r.address);
  });
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return { port: s.address().port, seen, address: family === 6 ? '::1' : '127.0.0.1' };
}

/** a loopback UDP port free at this moment */
async function freeUdpPort(family: 4 | 6): Promise<number> {
  const s = await bound(family === 6 ? 'udp6' : 'udp4', family === 6 ? '::1' : '127.0.0.1');
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function setup(config: (port: number) => string) {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-udp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, config(port), { mode: 0o600 });
  const host = MacHost.laptop();
  host.withIpv6Uplink();
  const prior = host.snapshot();
  const e4 = await echo('dst', 4);
  const e6 = await echo('dst6', 6);
  /** the destinations the model's apps send to, and the echo server each stands for */
  const internet = (d: Ep): Ep =>
    d.address.includes(':')
      ? { address: e6.address, port: e6.port }
      : { address: e4.address, port: e4.port };

  // the app sockets the udp pcblist_n lists: their port → owner (unconnected, wildcard-bound)
  // (gen: the socket's generation, unique per socket as inp_gencnt is, ports reused or not)
  const udpOwners = new Map<number, { pid: number; v6: boolean; gen: bigint }>();
  let gen = 0n;
  const pinned: string[] = [];
  const natives: DarwinFlowNatives = {
    sysctl: (name) => {
      if (name !== 'net.inet.udp.pcblist_n') return cat([xinpgen(0), xinpgen(0)]);
      const recs = [...udpOwners].flatMap(([p, o]) => [
        inpcb(
          o.v6,
          o.v6 ? new Array(16).fill(0) : [0, 0, 0, 0],
          p,
          o.v6 ? new Array(16).fill(0) : [0, 0, 0, 0],
          0,
          o.gen,
        ),
        xsocket(501, o.pid, 0),
        ...rest(),
      ]);
      return cat([xinpgen(udpOwners.size), ...recs, xinpgen(udpOwners.size)]);
    },
    pidPath: (pid) => PATHS[pid],
    originalDst: () => {
      throw new Error('no TCP in this test');
    },
    boundTcpFd: () => {
      throw new Error('no TCP in this test');
    },
    // DIOCNATLOOK answered by the model's PF states (pfnatlook.ts udpOriginDarwin's two lookups)
    udpOrigin: (peer, listener) => {
      const dst = host.pfStates.natlook('out', peer, listener);
      const app = host.pfStates.natlook('in', peer, dst);
      return { app, dst: internet(dst) };
    },
    pinUdp: (sock, ifname, family) => {
      pinned.push(`${ifname}/${family}`);
      upstreams.set(sock.address().port, ifname);
    },
  };
  /** the router's upstream sockets: local port → the interface it pinned them to */
  const upstreams = new Map<number, string>();

  const { io } = await modelEngineIo(host);
  const { d, events, finished } = modelDaemon({
    configPath: file,
    platform: darwinPlatform,
    exec: host,
    state: new FileStateStore(join(dir, 'state')),
    engines: createInprocEngineHost({ io, uapi: false }),
    flowRouter: { natives: async () => natives, subnets: () => ['192.168.1.0/24'] },
  });
  const runs = async (n: number) => {
    const e = await finished(n);
    expect(e, JSON.stringify(events.filter((x) => x.type === 'error'))).toMatchObject({
      outcome: expect.stringMatching(/^(converged|unchanged)$/),
    });
    return e;
  };
  const decisions = async () =>
    Object.fromEntries(
      [...((await d.status()).placement?.reason ?? '').matchAll(/(\w+) (\d+)/g)].map((m) => [
        m[1]!,
        Number(m[2]),
      ]),
    );

  /**
   * One datagram of an app (pid `pid`, its socket at `appPort`) to `dst`: routed by the
   * model's table (the source is that interface's address), through the model's PF; what PF
   * delivers to the router is sent for real from the flow's loopback port. The reply, when
   * one comes, is put back through the model's PF to the app. `reply`: wait for one.
   */
  const appSend = async (
    pid: number,
    appPort: number,
    dst: Ep,
    msg: string,
    o: { reply?: boolean; uid?: number } = {},
  ): Promise<{ fate: UdpFate; src: Ep; reply?: { text: string; back: UdpFate } }> => {
    const family = dst.address.includes(':') ? 6 : 4;
    udpOwners.set(appPort, { pid, v6: family === 6, gen: ++gen });
    const iface = host.lookup(dst.address)!.netif;
    const ifc = host.interfaces.get(iface)!;
    const src = { address: (family === 6 ? ifc.inet6 : ifc.inet)[0]!.address, port: appPort };
    const natPort = await freeUdpPort(family);
    host.pfStates.pick = () => natPort;
    const fate = pfUdpSend(host, host.pfStates, iface, { family, src, dst, uid: o.uid ?? 501 });
    if (fate.fate !== 'local') return { fate, src };
    const s = await bound(family === 6 ? 'udp6' : 'udp4', fate.src.address, fate.src.port);
    const got = new Promise<{ text: string; back: UdpFate }>((resolve) =>
      s.once('message', (m, r) =>
        resolve({
          text: m.toString(),
          // the router's reply as the model's PF hands it on: back to the app
          back: pfUdpSend(host, host.pfStates, 'lo0', {
            family,
            src: { address: r.address, port: r.port },
            dst: fate.src,
          }),
        }),
      ),
    );
    await new Promise<void>((r) => s.send(msg, fate.dst.port, fate.dst.address, () => r()));
    const reply = o.reply === false ? undefined : await got;
    s.close();
    return { fate, src, ...(reply ? { reply } : {}) };
  };

  /** the first run's end, whatever it was */
  const finishedAny = () => finished(1);
  return {
    d,
    host,
    prior,
    port,
    pinned,
    upstreams,
    runs,
    finishedAny,
    appSend,
    decisions,
    e4,
    e6,
  };
}

describe('macOS host model: per-app UDP through the daemon and its flow router', () => {
  it('each app by its rule (tunnel, direct, blocked), unmatched by the default; two destinations of one socket are two flows; replies reach the app from the destination; down closes the relay', async () => {
    const t = await setup(
      (port) => `${macConfig({ killSwitch: false })}${rules}routing: { proxyPortBase: ${port} }\n`,
    );
    await t.d.start();
    await t.runs(1);
    expect(t.host.pf.nat).toEqual(
      expect.arrayContaining(['nat-anchor "com.awg/*" all', 'rdr-anchor "com.awg/*" all']),
    );

    // Mail (rule: home) sends from the tunnel's address (the routing table's 0/1 is utun0)
    const mail = await t.appSend(530, 61001, QUIC, 'mail');
    expect(mail.src.address).toBe('10.66.0.2');
    expect(mail.fate).toMatchObject({ fate: 'local', dst: { port: t.port } });
    expect(mail.reply).toEqual({
      text: 'dst:mail',
      back: { fate: 'local', src: QUIC, dst: mail.src },
    });
    expect(t.pinned).toEqual(['utun0/4']);
    // the router's upstream datagram, as the model's PF sees it: root's, pinned to utun0
    const upPort = [...t.upstreams.keys()].at(-1)!;
    expect(
      pfUdpSend(t.host, t.host.pfStates, t.upstreams.get(upPort)!, {
        family: 4,
        src: { address: '10.66.0.2', port: upPort },
        dst: QUIC,
        uid: 0,
      }),
    ).toMatchObject({ fate: 'wire', iface: 'utun0' });

    // the flow's next datagram: no new decision, the same socket
    const before = await t.decisions();
    const again = await t.appSend(530, 61001, QUIC, 'mail-again');
    expect(again.reply?.text).toBe('dst:mail-again');
    expect(await t.decisions()).toEqual(before);
    expect(t.pinned).toEqual(['utun0/4']);

    // one socket, a second destination (STUN): a flow of its own, decided and relayed
    const stun = await t.appSend(530, 61001, STUN, 'stun');
    expect(stun.reply).toEqual({
      text: 'dst:stun',
      back: { fate: 'local', src: STUN, dst: stun.src },
    });
    expect(t.pinned).toEqual(['utun0/4', 'utun0/4']);

    // curl (rule tools: direct) → pinned to en0; its upstream leaves by en0
    const curl = await t.appSend(601, 61002, QUIC, 'curl');
    expect(curl.reply?.back).toMatchObject({ fate: 'local', src: QUIC });
    expect(t.pinned.at(-1)).toBe('en0/4');
    const curlUp = [...t.upstreams.keys()].at(-1)!;
    expect(
      pfUdpSend(t.host, t.host.pfStates, 'en0', {
        family: 4,
        src: { address: '192.168.1.175', port: curlUp },
        dst: QUIC,
        uid: 0,
      }),
    ).toMatchObject({ fate: 'wire', iface: 'en0' });

    // Notes (no rule) → the default, home
    expect((await t.appSend(603, 61003, QUIC, 'notes')).reply?.text).toBe('dst:notes');
    expect(t.pinned.at(-1)).toBe('utun0/4');

    // telemetry (rule: block): PF hands it to the router, which sends nothing anywhere
    const pins = t.pinned.length;
    const blocked = (await t.decisions()).blocked ?? 0;
    const tele = await t.appSend(602, 61004, QUIC, 'beacon', { reply: false });
    expect(tele.fate).toMatchObject({ fate: 'local', dst: { port: t.port } });
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (((await t.decisions()).blocked ?? 0) === blocked)
      await new Promise((r) => setTimeout(r, 10));
    expect((await t.decisions()).blocked).toBe(blocked + 1);
    expect(t.pinned.length).toBe(pins);
    expect(t.e4.seen).not.toContain('beacon');

    // root's UDP is not routed per app: the routing table (the default tunnel)
    const root = await t.appSend(0, 61005, QUIC, 'root', { uid: 0, reply: false });
    expect(root.fate).toMatchObject({ fate: 'wire', iface: 'utun0' });

    // per-rule counters: a UDP flow is a connection of its rule, its payload both ways
    const byRule = Object.fromEntries(((await t.d.status()).rules ?? []).map((r) => [r.name, r]));
    expect(byRule['mail']).toMatchObject({
      connections: 2,
      txBytes: 4 + 10 + 4,
      rxBytes: 8 + 14 + 8,
    });
    expect(byRule['tools']).toMatchObject({ connections: 1, txBytes: 4, rxBytes: 8 });
    expect(byRule['telemetry']).toMatchObject({ connections: 1, txBytes: 0, rxBytes: 0 });

    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    // the relay's socket is closed: the port can be bound again
    const s = await bound('udp4', '127.0.0.1', t.port);
    s.close();
    await t.d.stop();
  });

  it("ipv6: block, split tunnel, no kill switch: a tunnelled app's IPv6 UDP goes nowhere (PF hands it to the router, which blocks it), its IPv4 goes through the tunnel, an unmatched app's IPv6 goes direct (the control, as on Linux)", async () => {
    const t = await setup(
      (port) => `${macConfig({ killSwitch: false })
        .replace('default: home', 'default: direct')
        .replace('system: default-tunnel', 'system: keep')}rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: allow-direct
routing: { proxyPortBase: ${port} }
`,
    );
    await t.d.start();
    await t.runs(1);

    // Mail's v6: to lo0 and the router, never out of en0; the router opens nothing
    const blocked = (await t.decisions()).blocked ?? 0;
    const m6 = await t.appSend(530, 62001, QUIC6, 'mail6', { reply: false });
    expect(m6.fate).toMatchObject({ fate: 'local', dst: { address: '::1', port: t.port } });
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (((await t.decisions()).blocked ?? 0) === blocked)
      await new Promise((r) => setTimeout(r, 10));
    expect((await t.decisions()).blocked).toBe(blocked + 1);
    expect(t.pinned).toEqual([]);
    expect(t.e6.seen).toEqual([]);

    // Mail's v4: the tunnel (a non-default tunnel: bound to its utun, scoped routes)
    expect((await t.appSend(530, 62002, QUIC, 'mail4')).reply?.text).toBe('dst:mail4');
    expect(t.pinned).toEqual(['utun0/4']);

    // Notes (no rule): the default, direct, v6 included
    const n6 = await t.appSend(603, 62003, QUIC6, 'notes6');
    expect(n6.reply).toEqual({
      text: 'dst6:notes6',
      back: { fate: 'local', src: QUIC6, dst: n6.src },
    });
    expect(t.pinned.at(-1)).toBe('en0/6');
    await t.d.down();
    await t.d.stop();
  });

  it('the router cannot take its UDP port: the run fails before anything on the host changes', async () => {
    const t = await setup(
      (port) => `${macConfig({ killSwitch: false })}${rules}routing: { proxyPortBase: ${port} }\n`,
    );
    const squat = await bound('udp4', '127.0.0.1', t.port);
    cleanups.push(() => new Promise<void>((r) => squat.close(() => r())));
    await t.d.start();
    const e = await t.finishedAny();
    expect(e).toMatchObject({
      outcome: 'failed',
      error: {
        kind: 'driver',
        message: expect.stringMatching(
          new RegExp(
            `^the flow router cannot listen on 127\\.0\\.0\\.1/::1 port ${t.port} \\(TCP and UDP`,
          ),
        ),
      },
    });
    expect(t.host.mutations).toBe(0);
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });
});
