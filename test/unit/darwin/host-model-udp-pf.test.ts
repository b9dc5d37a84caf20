/**
 * The flow router's UDP rules (platform/darwin/pf-flow.ts) in the model host's PF with PF's
 * states (pf-udp.ts, pf-states.ts: xnu bsd/net/pf.c as read, never observed on a Mac): an
 * app's datagram is sent to lo0 without a state, given a loopback port of its own there
 * (`nat`, its state bound to lo0) and redirected to the router (`rdr`); DIOCNATLOOK finds its
 * destination and its app socket; the router's reply reaches the app from the destination.
 * The anchor is loaded by the real pipeline (a one-shot apply on the model: the router that
 * would answer is the daemon's, host-model-udp.test.ts). Also pinned: what goes wrong when a
 * rule detail differs (a floating lo0 state, a stateful route-to), and the residual collision
 * of two flows PF gives the same port.
 */
import { describe, expect, it } from 'vitest';
import { pfUdpSend, type Datagram } from '../../helpers/macos-host/pf-udp.js';
import { macConfig, rigsCleanedAfterEach } from '../../helpers/macos-host/scenario.js';
import type { MacHost } from '../../helpers/macos-host/model.js';

const rig = rigsCleanedAfterEach();
const PORT = 47311;
const APP = { address: '192.168.1.175', port: 60001 };
const QUIC = { address: '93.184.216.34', port: 443 };
const STUN = { address: '203.0.113.50', port: 3478 };

const config = (killSwitch = false) => `${macConfig({ killSwitch })}rules:
  - name: mail
    match: { name: Mail }
    target: home
routing: { proxyPortBase: ${PORT} }
`;

/** a user app's datagram as the routing table sends it (en0 here: the tunnel is not up's concern) */
const app = (dst = QUIC, iface = 'en0', uid = 501): [string, Datagram] => [
  iface,
  { family: 4, src: APP, dst, uid },
];

async function applied(killSwitch = false): Promise<MacHost> {
  const r = rig(config(killSwitch));
  const { ctx } = await r.apply();
  expect(ctx.outcome).toBe('converged');
  expect(r.host.pf.nat).toEqual(
    expect.arrayContaining(['nat-anchor "com.awg/*" all', 'rdr-anchor "com.awg/*" all']),
  );
  return r.host;
}

describe('macOS host model: user UDP through PF to the flow router', () => {
  it('a flow gets a loopback port of its own, reaches the router, is found by DIOCNATLOOK, and the reply reaches the app from the destination', async () => {
    const host = await applied();
    const t = host.pfStates;
    t.pick = () => 50000;
    const first = pfUdpSend(host, t, ...app());
    expect(first).toEqual({
      fate: 'local',
      src: { address: '127.0.0.1', port: 50000 },
      dst: { address: '127.0.0.1', port: PORT },
    });
    // the router's two lookups (pfnatlook.ts udpOriginDarwin)
    const peer = { address: '127.0.0.1', port: 50000 };
    const listener = { address: '127.0.0.1', port: PORT };
    expect(t.natlook('out', peer, listener)).toEqual(QUIC);
    expect(t.natlook('in', peer, QUIC)).toEqual(APP);
    // the flow's next datagram: the same port, still to the router (never out on en0)
    t.pick = () => 50001;
    expect(pfUdpSend(host, t, ...app())).toEqual(first);
    // from the tunnel's utun (a full tunnel's 0/1) it goes to the router the same way
    expect(pfUdpSend(host, t, ...app(QUIC, 'utun0'))).toMatchObject({ fate: 'local' });
    // the router's reply to the flow's port reaches the app from where it sent
    expect(pfUdpSend(host, t, 'lo0', { family: 4, src: listener, dst: peer })).toEqual({
      fate: 'local',
      src: QUIC,
      dst: APP,
    });
  });

  it('one socket, two destinations: two flows, two ports (rdr alone would collide on the second)', async () => {
    const host = await applied();
    const t = host.pfStates;
    const a = pfUdpSend(host, t, ...app(QUIC));
    const b = pfUdpSend(host, t, ...app(STUN));
    expect(a).toMatchObject({ fate: 'local', dst: { port: PORT } });
    expect(b).toMatchObject({ fate: 'local', dst: { port: PORT } });
    if (a.fate !== 'local' || b.fate !== 'local') throw new Error('unreachable');
    expect(a.src.port).not.toBe(b.src.port);
    expect(t.natlook('out', a.src, { address: '127.0.0.1', port: PORT })).toEqual(QUIC);
    expect(t.natlook('out', b.src, { address: '127.0.0.1', port: PORT })).toEqual(STUN);
  });

  it('what the router never sees: root, system daemons, loopback, the skip table (endpoint, broadcast, multicast)', async () => {
    const host = await applied();
    const t = host.pfStates;
    expect(pfUdpSend(host, t, ...app(QUIC, 'en0', 0))).toMatchObject({
      fate: 'wire',
      iface: 'en0',
    });
    const ntp = { address: '17.253.14.125', port: 123 };
    expect(pfUdpSend(host, t, ...app(ntp, 'en0', 266))).toMatchObject({ fate: 'wire', src: APP });
    for (const dst of [
      { address: '198.51.100.7', port: 51820 },
      { address: '255.255.255.255', port: 67 },
      { address: '224.0.0.251', port: 5353 },
    ])
      expect(pfUdpSend(host, t, ...app(dst))).toMatchObject({ fate: 'wire', dst });
    // `pass all` kept their states (PF's default), none translates
    expect(t.keys.filter((k) => k.states.some((s) => s.by !== 'filter'))).toEqual([]);
  });

  it('under the kill switch the app still reaches the router; root and the system are blocked outside the tunnel', async () => {
    const host = await applied(true);
    const t = host.pfStates;
    expect(pfUdpSend(host, t, ...app())).toMatchObject({ fate: 'local', dst: { port: PORT } });
    expect(pfUdpSend(host, t, ...app(QUIC, 'en0', 0))).toMatchObject({ fate: 'dropped' });
    expect(pfUdpSend(host, t, ...app(QUIC, 'utun0', 0))).toMatchObject({
      fate: 'wire',
      iface: 'utun0',
    });
  });

  it('the rule details matter: a floating lo0 state sends the next datagram out of en0 with a loopback source; a stateful route-to skips the nat', async () => {
    const host = await applied();
    const rules = host.pf.anchors.get('com.awg/awg')!;
    const floating = rules.map((r) => r.replace(' keep state (if-bound)', ' keep state'));
    host.pf.anchors.set('com.awg/awg', floating);
    const t = host.pfStates;
    expect(pfUdpSend(host, t, ...app())).toMatchObject({ fate: 'local' });
    expect(pfUdpSend(host, t, ...app())).toMatchObject({
      fate: 'wire',
      iface: 'en0',
      src: { address: '127.0.0.1' },
    });
    t.clear();
    host.pf.anchors.set(
      'com.awg/awg',
      rules.map((r) => r.replace(' user >= 501 no state', ' user >= 501 keep state')),
    );
    // no nat: the router would see the app's own address, and a second destination of the
    // same socket collides with the first rdr state (dropped)
    expect(pfUdpSend(host, t, ...app(QUIC))).toMatchObject({ fate: 'local', src: APP });
    expect(pfUdpSend(host, t, ...app(STUN))).toMatchObject({
      fate: 'dropped',
      why: expect.stringMatching(/collision/),
    });
  });

  it('residual: two live flows to different destinations given the same nat port collide at the rdr; the later is dropped (fail-closed) until the state goes', async () => {
    const host = await applied();
    const t = host.pfStates;
    t.pick = () => 50000;
    expect(pfUdpSend(host, t, ...app(QUIC))).toMatchObject({ fate: 'local', src: { port: 50000 } });
    const other = { ...APP, port: 60002 };
    expect(pfUdpSend(host, t, 'en0', { family: 4, src: other, dst: STUN, uid: 501 })).toMatchObject(
      {
        fate: 'dropped',
        why: expect.stringMatching(/in on lo0: state insert collision/),
      },
    );
    t.clear(); // the states expired (or `pfctl -F states`)
    expect(pfUdpSend(host, t, 'en0', { family: 4, src: other, dst: STUN, uid: 501 })).toMatchObject(
      {
        fate: 'local',
      },
    );
  });
});
