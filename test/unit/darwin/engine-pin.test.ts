/**
 * The engines' UDP sockets on macOS pinned to the physical interface (IP_BOUND_IF /
 * IPV6_BOUND_IF; dataplane/conn/pin.ts, dataplane/engine.ts utunEngineIo) and re-pinned when
 * it changes. The pin call is a fake (the koffi binding is macOS's, byte-tested in
 * native-bound-if.test.ts); the sockets are real node:dgram sockets on this host.
 */
import type { Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { FileStateStore } from '../../../src/util/state.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { modelEngineIo, modelNatives } from '../../helpers/macos-host/engine.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { ENDPOINT, macConfig } from '../../helpers/macos-host/scenario.js';
import { InterfacePin } from '../../../src/dataplane/conn/pin.js';
import { utunEngineIo } from '../../../src/dataplane/engine.js';

/** the pin calls recorded (modelNatives); no utun is opened through these */
function fakeNatives(o: { failOn?: Set<string> } = {}) {
  const { natives, pins } = modelNatives(MacHost.laptop(), { failPinOn: o.failOn });
  return { natives, calls: pins };
}

const sock = (port: number) => ({ address: () => ({ port }) }) as unknown as Socket;

describe('InterfacePin', () => {
  it('pins once an interface is known; the v4 default wins; a change re-pins every socket; offline keeps the pin', () => {
    const { natives, calls } = fakeNatives();
    const pin = new InterfacePin(natives);
    const [s1, s2] = [sock(1), sock(2)];
    pin.attach(s1, 6);
    expect(calls).toEqual([]); // nothing known yet: not pinned (and never to a guess)
    pin.setUnderlay({ v4: 'en0', v6: 'en7' });
    pin.attach(s2, 4);
    expect(calls).toEqual([
      { port: 1, ifname: 'en0', family: 6 },
      { port: 2, ifname: 'en0', family: 4 },
    ]);
    pin.setUnderlay({ v4: 'en0' }); // same interface: no call
    expect(calls).toHaveLength(2);
    pin.setUnderlay({ v6: 'en5' }); // the v4 default went away; v6 remains
    expect(calls.slice(2)).toEqual([
      { port: 1, ifname: 'en5', family: 6 },
      { port: 2, ifname: 'en5', family: 4 },
    ]);
    pin.setUnderlay({}); // offline: keep en5 rather than fall back to the routing table
    expect(pin.interface).toBe('en5');
    expect(calls).toHaveLength(4);
    pin.detach(s1);
    pin.setUnderlay({ v4: 'en1' });
    expect(calls.slice(4)).toEqual([{ port: 2, ifname: 'en1', family: 4 }]);
  });

  it('a pin that fails is logged and counted, the socket keeps its old pin, the next run retries', () => {
    const failOn = new Set(['en9']);
    const { natives, calls } = fakeNatives({ failOn });
    const log: string[] = [];
    const pin = new InterfacePin(natives, (m) => log.push(m));
    pin.setUnderlay({ v4: 'en0' });
    pin.attach(sock(1), 6);
    pin.setUnderlay({ v4: 'en9' });
    expect(pin.failures).toBe(1);
    expect(log).toEqual([
      "cannot pin the engine's UDP socket to en9: no interface en9 (it stays on en0)",
    ]);
    expect(pin.pins()).toEqual([{ family: 6, pinned: 'en0' }]);
    failOn.clear();
    pin.setUnderlay({ v4: 'en9' });
    expect(calls.at(-1)).toEqual({ port: 1, ifname: 'en9', family: 6 });
  });
});

describe('utunEngineIo: the binds it makes', () => {
  it('a bound socket is pinned with the option of its family; setUnderlay re-pins it; closed, it is forgotten', async () => {
    const { natives, calls } = fakeNatives();
    const io = await utunEngineIo({ natives });
    io.setUnderlay!({ v4: 'en0' });
    const bind = io.bind();
    const port = await bind.open(0);
    try {
      expect(calls).toHaveLength(1);
      // the dual-stack udp6 socket where the host has IPv6 (IPV6_BOUND_IF covers its v4-mapped sends), udp4 otherwise
      expect(calls[0]).toMatchObject({ port, ifname: 'en0' });
      expect([4, 6]).toContain(calls[0]!.family);
      io.setUnderlay!({ v4: 'en5' });
      expect(calls[1]).toEqual({ ...calls[0], ifname: 'en5' });
      // a re-open (the device changes its listen port) pins the new socket and forgets the old
      const port2 = await bind.open(0);
      expect(calls[2]).toMatchObject({ port: port2, ifname: 'en5' });
      expect(io.pin.pins()).toHaveLength(1);
    } finally {
      await bind.close();
    }
    expect(io.pin.pins()).toEqual([]);
    io.setUnderlay!({ v4: 'en0' });
    expect(calls).toHaveLength(3);
  });
});

describe('the daemon on the macOS host model with its real in-process engines', () => {
  it("the engine's socket leaves by the default route's interface; the Mac moves to another network: re-pinned in the run that follows", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-machost-pin-'));
    const host = MacHost.laptop();
    const { io, pins: calls } = await modelEngineIo(host);
    const engines = createInprocEngineHost({ io, uapi: false });
    writeFileSync(join(dir, 'awg.yaml'), macConfig({ killSwitch: false }), { mode: 0o600 });
    const { d, finished } = modelDaemon({
      configPath: join(dir, 'awg.yaml'),
      platform: darwinPlatform,
      drivers: createDarwinDrivers({ exec: host }),
      engines,
      exec: host,
      state: new FileStateStore(join(dir, 'state')),
    });
    try {
      await d.start();
      expect(await finished(1)).toMatchObject({ outcome: 'converged' });
      expect(engines.tunnels()).toEqual(['home']);
      expect(host.interfaces.has('utun0')).toBe(true);
      expect(calls.map((c) => c.ifname)).toEqual(['en0']);

      // Wi-Fi off, iPhone USB on: the default route now leaves by en5
      host.interfaces.set('en5', {
        name: 'en5',
        index: 12,
        mtu: 1500,
        up: true,
        inet: [{ address: '172.20.10.2', prefixlen: 28 }],
        inet6: [],
      });
      host.routes = host.routes.filter((r) => !(r.dst === '0.0.0.0/0' && r.netif === 'en0'));
      host.routes.unshift(
        {
          family: 4,
          dst: '0.0.0.0/0',
          gateway: '172.20.10.1',
          flags: 'UGScg',
          netif: 'en5',
          system: true,
        },
        {
          family: 4,
          dst: '172.20.10.0/28',
          gateway: 'link#12',
          flags: 'UCS',
          netif: 'en5',
          system: true,
        },
      );
      d.wake('network');
      expect(await finished(2)).toMatchObject({ outcome: 'converged' });
      expect(calls.map((c) => c.ifname)).toEqual(['en0', 'en5']);
      expect(host.routes.filter((r) => r.dst === `${ENDPOINT}/32`)).toEqual([
        expect.objectContaining({ gateway: '172.20.10.1', netif: 'en5' }),
      ]);
    } finally {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(host.interfaces.has('utun0')).toBe(false);
  });
});
