/**
 * Interop of the embedded engine with Debian's wireguard-go. Namespace A: `awg apply` of a
 * WireGuard tunnel (our engine). Namespace B: wireguard-go configured with `wg setconf` /
 * `wg set`. A veth (10.200.<n>.0/24) joins them; the tunnel subnet is 10.200.<n+1>.0/24.
 *
 * The tests run in order and share the two peers: wireguard-go initiates, traffic both
 * ways, `wg show` on our socket; then a fresh pair where awg initiates (with persistent
 * keepalive and the test-only short rekey), keepalives, rekey, a wireguard-go restart and
 * roaming of awg's underlay address, and replies from the address wireguard-go reached.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { bulkTransfer } from '../helpers/bulk.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  tcpReachable,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nftRuleCounters,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
  type VethPair,
} from '../helpers/netns.js';
import {
  awgConfig,
  parseWgDump,
  pingEventually,
  pingOk,
  sleep,
  startWireguardGo,
  waitFor,
  wgDump,
  wgGoAddress,
  wgSetconf,
  wgVia,
  type WgGo,
} from './interop-wg.js';

const skip = requireNetnsPrereqs(['wireguard-go', 'wg', 'tcpdump', 'unshare', 'mount', 'ping']);

const N = 100 + Math.floor(Math.random() * 50) * 2;
const UNDER_A = `10.200.${N}.1`;
const UNDER_A2 = `10.200.${N}.3`;
const UNDER_A3 = `10.200.${N}.5`;
const UNDER_B = `10.200.${N}.2`;
const TUN_A = `10.200.${N + 1}.1`;
const TUN_B = `10.200.${N + 1}.2`;
const TAG = Math.random().toString(16).slice(2, 8);
const TUNNEL = `i${TAG}`;
const LINK = `awg-${TUNNEL}`;
const WG_IFACE = `wgt${TAG}`;
const REKEY_S = 3;

describe.skipIf(skip)('awg engine ↔ wireguard-go', () => {
  const a = wgKeyPair();
  const b = wgKeyPair();
  let nsA = '';
  let nsB = '';
  let veth: VethPair;
  let env: AwgEnv;
  let work = '';
  let wg: WgGo | undefined;

  async function startWg(withEndpoint: boolean): Promise<void> {
    wg = await startWireguardGo(nsB, WG_IFACE);
    await wgSetconf(
      nsB,
      WG_IFACE,
      work,
      `[Interface]\nPrivateKey = ${b.privateKey}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${a.publicKey}\nAllowedIPs = ${TUN_A}/32\n${withEndpoint ? `Endpoint = ${UNDER_A}:51820\n` : ''}`,
    );
    await wgGoAddress(nsB, WG_IFACE, `${TUN_B}/24`);
  }

  async function applyAwg(opts: { endpoint: boolean; keepalive?: number; rekey?: boolean }) {
    const cfg = writeConfig(
      env,
      'a.yaml',
      awgConfig({
        tunnel: TUNNEL,
        privateKey: a.privateKey,
        address: `${TUN_A}/24`,
        listenPort: 51820,
        peerPublicKey: b.publicKey,
        endpoint: opts.endpoint ? `${UNDER_B}:51820` : undefined,
        allowedIPs: [`${TUN_B}/32`],
        keepalive: opts.keepalive,
      }),
    );
    const r = await awg(nsA, env, ['apply', '-f', cfg], {
      extraEnv: opts.rekey ? { AWG_TEST_REKEY_AFTER_TIME_S: String(REKEY_S) } : {},
    });
    expect(r.code, show(r)).toBe(0);
  }

  const ourShow = (args: string[] = []) =>
    wgVia(nsA, env.env.AWG_UAPI_DIR!, ['show', LINK, ...args]);

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    nsA = await createNetns('iwa');
    nsB = await createNetns('iwb');
    veth = await vethPair(nsA, nsB, { addrA: `${UNDER_A}/24`, addrB: `${UNDER_B}/24` });
    env = makeAwgEnv();
    work = mkdtempSync(join(tmpdir(), 'awgt-iw-'));
  });

  afterAll(async () => {
    if (env && nsA) await awg(nsA, env, ['down']).catch(() => undefined);
    await wg?.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
    cleanupAwgEnv(env);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('wireguard-go initiates: handshake, then ping both ways', async () => {
    await applyAwg({ endpoint: false });
    await startWg(true);
    // awg has no endpoint for its peer: only wireguard-go can start the handshake
    expect(await pingEventually(nsB, TUN_A, 20_000)).toBe(true);
    expect(await pingOk(nsA, TUN_B)).toBe(true);
    const d = await wgDump(nsB, WG_IFACE);
    expect(d.peers).toHaveLength(1);
    expect(d.peers[0]!.latestHandshake).toBeGreaterThan(0);
    expect(d.peers[0]!.endpoint).toBe(`${UNDER_A}:51820`);
  });

  it('TCP both ways through the tunnel', async () => {
    expect(await tcpReachable(nsA, nsB, TUN_B, 18080)).toBe(true);
    expect(await tcpReachable(nsB, nsA, TUN_A, 18081)).toBe(true);
  });

  it('TCP bulk both ways: 16 MiB arrive intact (sha256) through our reused send and receive slabs', async () => {
    for (const [from, to, addr, port] of [
      [nsA, nsB, TUN_B, 18090],
      [nsB, nsA, TUN_A, 18091],
    ] as const) {
      const r = await bulkTransfer(from, to, addr, port, 16 * 1024 * 1024);
      expect(r.codes).toEqual([0, 0]);
      expect(r.sent).toMatch(/^16777216 [0-9a-f]{64}$/);
      expect(r.received).toBe(r.sent);
    }
  }, 60_000);

  it('`wg show` reads our UAPI socket: peer, learned endpoint, handshake, byte counters', async () => {
    const text = await ourShow();
    expect(text).toContain(`interface: ${LINK}`);
    expect(text).toContain(`peer: ${b.publicKey}`);
    expect(text).toMatch(/latest handshake: .*ago/);
    expect(text).toMatch(/transfer: .* received, .* sent/);
    const dump = parseWgDump(await ourShow(['dump']));
    expect(dump.listenPort).toBe(51820);
    const p = dump.peers[0]!;
    expect(p.publicKey).toBe(b.publicKey);
    expect(p.endpoint).toBe(`${UNDER_B}:51820`);
    expect(p.latestHandshake).toBeGreaterThan(0);
    expect(p.rx).toBeGreaterThan(0);
    expect(p.tx).toBeGreaterThan(0);
  });

  it('awg initiates against a fresh wireguard-go that has no endpoint for it', async () => {
    expect((await awg(nsA, env, ['down'])).code).toBe(0);
    await wg!.stop();
    await startWg(false);
    expect((await wgDump(nsB, WG_IFACE)).peers[0]!.endpoint).toBe('(none)');
    await applyAwg({ endpoint: true, keepalive: 1, rekey: true });
    // wireguard-go can only answer once awg's initiation taught it the endpoint
    const hs = await waitFor(
      async () => (await wgDump(nsB, WG_IFACE)).peers[0]!.latestHandshake,
      20_000,
    );
    expect(hs).toBeGreaterThan(0);
    expect((await wgDump(nsB, WG_IFACE)).peers[0]!.endpoint).toBe(`${UNDER_A}:51820`);
    expect(await pingOk(nsB, TUN_A)).toBe(true);
    expect(await pingOk(nsA, TUN_B)).toBe(true);
    expect(await tcpReachable(nsB, nsA, TUN_A, 18082)).toBe(true);
  });

  it('persistent keepalive: 32-byte keepalives on the veth while the tunnel is idle', async () => {
    const before = (await wgDump(nsB, WG_IFACE)).peers[0]!;
    // UDP length 40 = 8 + a 32-byte empty transport message (a keepalive), from awg
    const dump = nsSpawn(nsB, 'tcpdump', [
      '-l',
      '--immediate-mode',
      '-n',
      '-i',
      veth.ifB,
      `udp and src host ${UNDER_A} and udp[4:2] == 40`,
    ]);
    try {
      await sleep(3500);
    } finally {
      await dump.kill(1000);
    }
    const keepalives = dump
      .output()
      .split('\n')
      .filter((l) => l.includes(`${UNDER_A}.51820 > ${UNDER_B}.51820`));
    // persistentKeepalive 1 s, no application traffic in either direction
    expect(keepalives.length, dump.output()).toBeGreaterThanOrEqual(2);
    const after = (await wgDump(nsB, WG_IFACE)).peers[0]!;
    expect(after.rx - before.rx).toBeGreaterThanOrEqual(2 * 32);
  });

  it('rekeys after the shortened REKEY_AFTER_TIME (wireguard-go sees a new handshake)', async () => {
    const first = (await wgDump(nsB, WG_IFACE)).peers[0]!.latestHandshake;
    expect(first).toBeGreaterThan(0);
    const later = await waitFor(
      async () => {
        await pingOk(nsA, TUN_B, 1);
        const h = (await wgDump(nsB, WG_IFACE)).peers[0]!.latestHandshake;
        return h > first ? h : 0;
      },
      20_000,
      500,
    );
    expect(later).toBeGreaterThan(first);
    expect(await pingOk(nsB, TUN_A)).toBe(true);
  });

  it('wireguard-go restarted mid-session: re-handshake and traffic resumes', async () => {
    await wg!.stop();
    await startWg(false);
    expect((await wgDump(nsB, WG_IFACE)).peers[0]!.latestHandshake).toBe(0);
    expect(await pingEventually(nsA, TUN_B, 40_000)).toBe(true);
    expect((await wgDump(nsB, WG_IFACE)).peers[0]!.latestHandshake).toBeGreaterThan(0);
    expect(await pingOk(nsB, TUN_A)).toBe(true);
    expect(await tcpReachable(nsA, nsB, TUN_B, 18083)).toBe(true);
  });

  it('roaming: awg moves to a new underlay address, wireguard-go follows, traffic continues', async () => {
    await nsExec(nsA, 'sysctl', ['-qw', `net.ipv4.conf.${veth.ifA}.promote_secondaries=1`]);
    await nsExec(nsA, 'ip', ['addr', 'add', `${UNDER_A2}/24`, 'dev', veth.ifA]);
    await nsExec(nsA, 'ip', ['addr', 'del', `${UNDER_A}/24`, 'dev', veth.ifA]);
    expect(await pingEventually(nsA, TUN_B, 20_000)).toBe(true);
    const ep = await waitFor(async () => {
      const e = (await wgDump(nsB, WG_IFACE)).peers[0]!.endpoint;
      return e === `${UNDER_A2}:51820` ? e : '';
    }, 10_000);
    expect(ep).toBe(`${UNDER_A2}:51820`);
    expect(await pingOk(nsB, TUN_A)).toBe(true);
    expect(await tcpReachable(nsB, nsA, TUN_A, 18084)).toBe(true);
  });

  it('replies leave from the address wireguard-go reached, not the preferred source of the route', async () => {
    // A has UNDER_A2 (primary) and UNDER_A3; wireguard-go is pointed at UNDER_A3 and B drops
    // anything from UNDER_A2's port 51820: only replies sourced from UNDER_A3 get through
    await nsExec(nsA, 'ip', ['addr', 'add', `${UNDER_A3}/24`, 'dev', veth.ifA]);
    await nsExec(nsB, 'nft', ['-f', '-'], {
      input: `table inet awgsrc {
  chain in {
    type filter hook input priority 0;
    ip saddr ${UNDER_A2} udp sport 51820 counter drop
    ip saddr ${UNDER_A3} udp sport 51820 counter
  }
}
`,
    });
    try {
      await nsExec(nsB, 'wg', [
        'set',
        WG_IFACE,
        'peer',
        a.publicKey,
        'endpoint',
        `${UNDER_A3}:51820`,
      ]);
      if (process.env.AWG_UDP_NATIVE === '0') {
        // the diagnosis switch (node:dgram bind, no IP_PKTINFO) does what its docs say: replies
        // leave from the route's preferred source, which B drops, so nothing gets through
        expect(await pingEventually(nsB, TUN_A, 5_000)).toBe(false);
        return;
      }
      expect(await pingEventually(nsB, TUN_A, 20_000)).toBe(true);
      expect(await tcpReachable(nsB, nsA, TUN_A, 18085)).toBe(true);
      const packets = await nftRuleCounters(nsB, 'inet', 'awgsrc');
      // accepted from UNDER_A3: the handshake-less session continued from the reached address
      expect(packets[1]).toBeGreaterThan(0);
      // wireguard-go still talks to UNDER_A3 (it would roam to a reply's source)
      expect((await wgDump(nsB, WG_IFACE)).peers[0]!.endpoint).toBe(`${UNDER_A3}:51820`);
    } finally {
      await nsExec(nsB, 'nft', ['delete', 'table', 'inet', 'awgsrc'], { allowFail: true });
    }
  });
});
