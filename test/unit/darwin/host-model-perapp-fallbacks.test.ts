/**
 * Per-app fallbacks on macOS through the daemon (host-model-perapp-rig.ts): a real peer on
 * loopback stops answering and comes back; the daemon's tunnel health takes each rule to its
 * fallback and back. Verified on the model only (docs/platform-macos.md).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Device } from '../../../src/dataplane/device/device.js';
import { UdpBind } from '../../../src/dataplane/conn/udp.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { generateKeyPair } from '../../../src/dataplane/crypto/keys.js';
import { cleanups, runCleanups, setup } from './host-model-perapp-rig.js';

afterEach(runCleanups);

describe('macOS host model: per-app rules through the daemon and its flow router', () => {
  it("fallbacks follow the tunnel's health through the daemon: a peer that stops answering takes its rules to allow-direct, block and failover (another tunnel), drop blocks either way, its return brings them back", async () => {
    // a real peer on loopback: our engine with a TUN that carries nothing; it answers handshakes
    const client = generateKeyPair();
    const server = generateKeyPair();
    const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');
    const startPeer = async (listenPort = 0) => {
      const dev = new Device({ tun: new MemoryTun('peer'), bind: new UdpBind('127.0.0.1') });
      await dev.configure({
        privateKey: server.privateKey,
        listenPort,
        peers: [{ publicKey: client.publicKey, allowedIps: ['10.66.0.2/32'] }],
      });
      await dev.up();
      return dev;
    };
    let peer = await startPeer();
    cleanups.push(() => peer.close());
    const peerPort = peer.port;
    // the failover's tunnel: a second peer that stays
    const client2 = generateKeyPair();
    const server2 = generateKeyPair();
    const backupPeer = new Device({ tun: new MemoryTun('peer2'), bind: new UdpBind('127.0.0.1') });
    await backupPeer.configure({
      privateKey: server2.privateKey,
      listenPort: 0,
      peers: [{ publicKey: client2.publicKey, allowedIps: ['10.67.0.2/32'] }],
    });
    await backupPeer.up();
    cleanups.push(() => backupPeer.close());
    // `home` is not the default: Mail's flows are dialled on its utun (scoped routes), others direct
    const config = (_mail: string | undefined, port: number) => `version: 1
tunnels:
  home:
    type: wireguard
    privateKey: "${b64(client.privateKey)}"
    addresses: [10.66.0.2/32]
    downAfter: 2
    peers:
      - publicKey: "${b64(server.publicKey)}"
        endpoint: 127.0.0.1:${peerPort}
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: 1
  backup:
    type: wireguard
    privateKey: "${b64(client2.privateKey)}"
    addresses: [10.67.0.2/32]
    peers:
      - publicKey: "${b64(server2.publicKey)}"
        endpoint: 127.0.0.1:${backupPeer.port}
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: 1
default: direct
killSwitch: off
rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: allow-direct
  - name: notes
    match: { name: Notes }
    target: home
    fallback: block
  - name: tools
    match: { dir: /usr/bin }
    target: home
    fallback: failover
  - name: tools-backup
    match: { dir: /usr/bin }
    target: backup
    fallback: block
  - name: calendar
    match: { name: Calendar }
    target: home
    fallback: drop
routing: { proxyPortBase: ${port} }
`;
    const t = await setup({ config, healthIntervalMs: 200 });
    /** until the daemon reports `tunnel` (home) `want` after event `from` (up to 30 s) */
    const becomes = async (want: string, from: number, tunnel = 'home') => {
      for (let i = 0; i < 600; i++) {
        if (
          t.events
            .slice(from)
            .some((e) => e.type === 'tunnel' && e.tunnel === tunnel && e.state === want)
        )
          return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `tunnel ${tunnel} never ${want}: ${JSON.stringify(t.events.filter((e) => e.type === 'tunnel'))}`,
      );
    };
    await t.d.start();
    await t.runs(1);
    await becomes('up', 0);
    await becomes('up', 0, 'backup');
    expect(await t.appConnect(530, 'mail-up')).toBe('dst:mail-up');
    const homePin = t.pinned.at(-1)!;
    expect(homePin).toMatch(/^utun\d+\/4$/);
    expect(await t.appConnect(603, 'notes-up')).toBe('dst:notes-up');
    expect(await t.appConnect(601, 'tools-up')).toBe('dst:tools-up');
    expect(t.pinned.slice(-2)).toEqual([homePin, homePin]);
    // `drop` blocks whether the tunnel is up or not (match.ts): reset, never dialled
    expect(await t.appConnect(604, 'calendar-up')).toBe('reset');
    expect(t.pinned.slice(-2)).toEqual([homePin, homePin]);
    // `awg status` counts the tunnel's traffic from the engine's peer (handshakes, keepalives)
    const home = (await t.d.status()).tunnels.find((x) => x.name === 'home')!;
    expect(home).toMatchObject({
      health: 'up',
      peers: [expect.objectContaining({ endpoint: `127.0.0.1:${peerPort}` })],
    });
    expect(home.rxBytes).toBeGreaterThan(0);
    expect(home.txBytes).toBeGreaterThan(0);

    // the peer goes away: keepalives unanswered, the daemon's probe unanswered for downAfter
    let from = t.events.length;
    await peer.close();
    await becomes('down', from);
    expect(await t.appConnect(530, 'mail-down')).toBe('dst:mail-down');
    expect(t.pinned.at(-1)).toBe('en0/4'); // allow-direct: pinned to the physical interface
    expect(await t.appConnect(603, 'notes-down')).toBe('reset'); // block: reaches nothing
    expect(t.pinned.at(-1)).toBe('en0/4');
    expect(await t.appConnect(601, 'tools-down')).toBe('dst:tools-down'); // failover: the next rule's tunnel
    const backupPin = t.pinned.at(-1)!;
    expect(backupPin).toMatch(/^utun\d+\/4$/);
    expect(backupPin).not.toBe(homePin);
    expect(await t.appConnect(604, 'calendar-down')).toBe('reset');
    expect(t.pinned.at(-1)).toBe(backupPin);
    expect((await t.d.status()).tunnels.find((x) => x.name === 'home')).toMatchObject({
      health: 'down',
    });

    // it comes back on the same port: the daemon's probes reach it, the rule goes home again
    from = t.events.length;
    peer = await startPeer(peerPort);
    await becomes('up', from);
    expect(await t.appConnect(530, 'mail-back')).toBe('dst:mail-back');
    expect(await t.appConnect(603, 'notes-back')).toBe('dst:notes-back');
    expect(await t.appConnect(601, 'tools-back')).toBe('dst:tools-back');
    expect(t.pinned.slice(-3)).toEqual([homePin, homePin, homePin]);
    expect(t.dst.seen).toEqual([
      'mail-up',
      'notes-up',
      'tools-up',
      'mail-down',
      'tools-down',
      'mail-back',
      'notes-back',
      'tools-back',
    ]);
    // the rules' counters saw it all: each rule's three connections (blocked and failed-over ones too)
    expect((await t.d.status()).rules?.map((r) => `${r.name} ${r.connections}`)).toEqual([
      'mail 3',
      'notes 3',
      'tools 3',
      'tools-backup 0',
      'calendar 2',
    ]);
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  }, 60_000);
});
