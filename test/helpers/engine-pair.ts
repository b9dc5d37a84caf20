/**
 * Two engines of ours in the test process, each on a TUN in its own (existing) namespace, their
 * UDP sockets on loopback, peered with each other: `<net>.1` on A, `<net>.2` on B, MTU 1420.
 * The devices are closed when `fn` ends, whatever happens. `device` options go to both,
 * `deviceA` to A's only.
 */
import { TunFile } from '../../src/dataplane/tun/file.js';
import { NativeUdpBind } from '../../src/dataplane/conn/native-udp.js';
import { Device, type DeviceOptions } from '../../src/dataplane/device/device.js';
import { generateKeyPair } from '../../src/dataplane/crypto/keys.js';
import { nsExec } from './netns.js';

export interface EngineSide {
  ns: string;
  dev: string;
  addr: string;
  bind: NativeUdpBind;
  device: Device;
}

export async function withEnginePair(
  nsA: string,
  nsB: string,
  o: {
    devs: [string, string];
    net: string;
    bind: () => NativeUdpBind;
    device?: Partial<DeviceOptions>;
    deviceA?: Partial<DeviceOptions>;
  },
  fn: (A: EngineSide, B: EngineSide) => Promise<void>,
): Promise<void> {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const side = (
    ns: string,
    dev: string,
    addr: string,
    extra?: Partial<DeviceOptions>,
  ): EngineSide => {
    const bind = o.bind();
    const device = new Device({
      tun: TunFile.open(dev, { netns: ns }),
      bind,
      ...o.device,
      ...extra,
    });
    return { ns, dev, addr, bind, device };
  };
  const A = side(nsA, o.devs[0], `${o.net}.1`, o.deviceA);
  const B = side(nsB, o.devs[1], `${o.net}.2`);
  try {
    await A.device.configure({ privateKey: ka.privateKey, listenPort: 0 });
    await B.device.configure({ privateKey: kb.privateKey, listenPort: 0 });
    await A.device.up();
    await B.device.up();
    const port = (d: EngineSide) => d.device.snapshot().listenPort;
    await A.device.configure({
      peers: [
        { publicKey: kb.publicKey, endpoint: `127.0.0.1:${port(B)}`, allowedIps: [`${B.addr}/32`] },
      ],
    });
    await B.device.configure({
      peers: [
        { publicKey: ka.publicKey, endpoint: `127.0.0.1:${port(A)}`, allowedIps: [`${A.addr}/32`] },
      ],
    });
    for (const s of [A, B]) {
      await nsExec(s.ns, 'ip', ['addr', 'add', `${s.addr}/24`, 'dev', s.dev]);
      await nsExec(s.ns, 'ip', ['link', 'set', s.dev, 'mtu', '1420', 'up']);
    }
    await fn(A, B);
  } finally {
    for (const s of [A, B]) await s.device.close();
  }
}
