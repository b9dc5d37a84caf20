import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AwgError } from '../../../src/errors.js';
import { MemoryNetwork } from '../../../src/dataplane/conn/memory.fake.js';
import { generateKeyPair } from '../../../src/dataplane/crypto/keys.js';
import { Device } from '../../../src/dataplane/device/device.js';
import { UapiError } from '../../../src/dataplane/device/uapi.js';
import { createEngine, type EngineIo } from '../../../src/dataplane/engine.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { hexOf, ipv4 } from './harness.js';
import { eventually } from '../../helpers/eventually.js';

/** A TUN whose link can vanish, as TunFile's. */
class LinkTun extends MemoryTun {
  gone = false;
  private errorCb: ((e: AwgError) => void) | undefined;
  onError(cb: (e: AwgError) => void): void {
    this.errorCb = cb;
  }
  flags(): number {
    if (this.gone) throw new Error('EBADFD');
    return 0x1001;
  }
  fail(): void {
    this.gone = true;
    this.errorCb?.(new Error('device deleted') as AwgError);
  }
}

const flush = () => new Promise((r) => setImmediate(r));

function get(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d) => {
      buf += d;
      if (buf.endsWith('\n\n')) {
        c.end();
        resolve(buf);
      }
    });
    c.on('error', reject);
    c.write('get=1\n\n');
  });
}

describe('createEngine: device + TUN + bind + UAPI socket', () => {
  const me = generateKeyPair();
  const srv = generateKeyPair();
  let dir: string;
  let net: MemoryNetwork;
  let server: Device;
  let serverTun: MemoryTun;
  let tuns: LinkTun[];
  let io: EngineIo;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-engine-'));
    net = new MemoryNetwork();
    serverTun = new MemoryTun('srv0');
    server = new Device({ tun: serverTun, bind: net.bind('10.0.0.2') });
    await server.ipcSet(
      `set=1\nprivate_key=${hexOf(srv.privateKey)}\nlisten_port=51820\npublic_key=${hexOf(me.publicKey)}\nallowed_ip=10.200.50.1/32\n\n`,
    );
    await server.up();
    tuns = [];
    io = {
      openTun: (link) => {
        const t = new LinkTun(link);
        tuns.push(t);
        return t;
      },
      bind: () => net.bind('10.0.0.1'),
    };
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = `set=1\nprivate_key=${hexOf(me.privateKey)}\nlisten_port=0\nfwmark=51820\npublic_key=${hexOf(srv.publicKey)}\nendpoint=10.0.0.2:51820\nallowed_ip=10.200.50.0/24\n\n`;

  it('builds the device down on the opened link; start configures it, brings it up and serves UAPI', async () => {
    const engine = createEngine('awg-vpn', io);
    expect(tuns.map((t) => t.name)).toEqual(['awg-vpn']);
    expect(engine.device.state).toBe('down');
    expect(engine.attached()).toBe(false);
    const handshakes: boolean[] = [];
    engine.device.on('handshake', (e) => handshakes.push(e.initiator));
    const path = join(dir, 'awg-vpn.sock');
    await engine.start(config, { uapiPath: path });
    expect(engine.device.state).toBe('up');
    expect(engine.attached()).toBe(true);
    expect(engine.uapi?.path).toBe(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const got = await get(path);
    expect(got).toContain(`public_key=${hexOf(srv.publicKey)}\n`);
    expect(got).toContain('fwmark=51820\n');

    tuns[0]!.inject(ipv4('10.200.50.1', '10.200.50.2', 'through'));
    await flush();
    expect(serverTun.written.map((p) => Buffer.from(p.subarray(20)).toString())).toEqual([
      'through',
    ]);
    await eventually(() => expect(handshakes).toEqual([true])); // emitted after the packet

    await engine.close();
    expect(engine.device.state).toBe('closed');
    expect(tuns[0]!.isClosed).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(engine.attached()).toBe(false);
  });

  it('without a UAPI path no socket is served', async () => {
    const engine = createEngine('awg-vpn', io);
    await engine.start(config);
    expect(engine.uapi).toBeUndefined();
    expect(engine.attached()).toBe(true);
    await engine.close();
  });

  it('a configuration the device rejects closes device and TUN and rethrows the UAPI error', async () => {
    const engine = createEngine('awg-vpn', io);
    const err = await engine
      .start('set=1\nlisten_port=99999\n\n', { uapiPath: join(dir, 'x.sock') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UapiError);
    expect((err as UapiError).errno).toBe(-22);
    expect(engine.device.state).toBe('closed');
    expect(tuns[0]!.isClosed).toBe(true);
    expect(existsSync(join(dir, 'x.sock'))).toBe(false);
  });

  it('a TUN whose link is deleted reports once through onTunError and no longer counts as attached', async () => {
    const engine = createEngine('awg-vpn', io);
    const errors: string[] = [];
    engine.onTunError((e) => errors.push(e.message));
    await engine.start(config);
    expect(engine.attached()).toBe(true);
    tuns[0]!.fail();
    expect(errors).toEqual(['device deleted']);
    expect(engine.attached()).toBe(false);
    await engine.close();
  });

  it('a device that cannot be built closes the TUN it opened', () => {
    const tun = new MemoryTun('awg-bad');
    tun.onReceive = () => {
      throw new Error('no receiver');
    };
    expect(() =>
      createEngine('awg-bad', { openTun: () => tun, bind: () => net.bind('10.0.0.5') }),
    ).toThrow('no receiver');
    expect(tun.isClosed).toBe(true);
  });
});
