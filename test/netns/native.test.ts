import { describe, expect, it } from 'vitest';
import { nsExec, nsSpawn, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ping']);

// imported lazily so the unit project (and non-Linux hosts) never load koffi/libc here
const tun = skip ? undefined : await import('../../src/native/tun.js');
const tunFile = skip ? undefined : await import('../../src/dataplane/tun/file.js');
const nl = skip ? undefined : await import('../../src/native/netlink.js');
const rtnl = skip ? undefined : await import('../../src/native/rtnl.js');

/** The parts of `ip -j -d link show` these tests read. */
interface LinkJson {
  linkinfo: { info_kind: string; info_data: Record<string, unknown> };
}

async function linkJson(ns: string, dev: string): Promise<LinkJson | undefined> {
  const r = await nsExec(ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as LinkJson[])[0];
}

function until<T>(get: () => T | undefined, what: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function csum(b: Buffer, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += i + 1 < end ? b.readUInt16BE(i) : (b[i] ?? 0) << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** ICMP echo request → echo reply (swap addresses, type 0, fix checksums). */
function echoReply(req: Uint8Array): Buffer {
  const p = Buffer.from(req);
  const ihl = (p[0]! & 0xf) * 4;
  const src = Buffer.from(p.subarray(12, 16));
  p.set(p.subarray(16, 20), 12);
  p.set(src, 16);
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(csum(p, 0, ihl), 10);
  p[ihl] = 0;
  p.writeUInt16BE(0, ihl + 2);
  p.writeUInt16BE(csum(p, ihl, p.length), ihl + 2);
  return p;
}

describe.skipIf(skip)('native: TUN', () => {
  const ns = useNetns('native-tun');

  it('creates a persistent TUN with an owner, re-attach keeps IFF_NO_PI, delete removes it', async () => {
    const made = tun!.createPersistentTun('awg-n0', { netns: ns.name, owner: 4321 });
    expect(made.name).toBe('awg-n0');
    expect(made.flags & tun!.IFF_PERSIST).toBe(tun!.IFF_PERSIST);
    expect(made.flags & tun!.IFF_NO_PI).toBe(tun!.IFF_NO_PI);
    let l = await linkJson(ns.name, 'awg-n0');
    expect(l?.linkinfo.info_kind).toBe('tun');
    expect(l?.linkinfo.info_data).toMatchObject({
      type: 'tun',
      pi: false,
      persist: true,
      user: 4321,
    });
    // the device was created inside the namespace, not on the host
    expect((await nsExec(ns.name, 'true', [])).code).toBe(0);
    const host = await import('node:child_process').then((cp) =>
      cp.execFileSync('ip', ['-o', 'link']).toString(),
    );
    expect(host).not.toContain('awg-n0');

    // exclusive create of an existing name is refused
    expect(() => tun!.createPersistentTun('awg-n0', { netns: ns.name })).toThrow(/EBUSY/);

    const f = tunFile!.TunFile.open('awg-n0', { netns: ns.name });
    try {
      expect(f.flags() & (tun!.IFF_NO_PI | tun!.IFF_PERSIST)).toBe(
        tun!.IFF_NO_PI | tun!.IFF_PERSIST,
      );
      expect(f.mtu()).toBe(1500);
      // read again once MTU_TTL_MS has passed since the last read, on the next turn
      await nsExec(ns.name, 'ip', ['link', 'set', 'dev', 'awg-n0', 'mtu', '1400']);
      await new Promise((r) => setTimeout(r, tunFile!.MTU_TTL_MS + 50));
      expect(f.mtu()).toBe(1500);
      await new Promise((r) => setImmediate(r));
      expect(f.mtu()).toBe(1400);
    } finally {
      f.close();
    }
    l = await linkJson(ns.name, 'awg-n0');
    expect(l?.linkinfo.info_data).toMatchObject({ pi: false, persist: true, user: 4321 });

    tun!.deletePersistentTun('awg-n0', { netns: ns.name });
    expect(await linkJson(ns.name, 'awg-n0')).toBeUndefined();
  });

  it('reads a routed ICMP packet with TunFile and answers it with write()', async () => {
    await nsExec(ns.name, 'sysctl', [
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.default.disable_ipv6=1',
    ]);
    const f = tunFile!.TunFile.open('awg-n1', { netns: ns.name });
    try {
      const got: Uint8Array[] = [];
      f.onReceive((pkts) => got.push(...pkts));
      await nsExec(ns.name, 'ip', ['addr', 'add', '10.200.50.1/24', 'dev', 'awg-n1']);
      await nsExec(ns.name, 'ip', ['link', 'set', 'awg-n1', 'up']);
      let replied = 0;
      f.onReceive((pkts) => {
        got.push(...pkts);
        for (const p of pkts) {
          // echo request from .1 to .2: answer it so ping succeeds
          if (p[0] === 0x45 && p[9] === 1 && p[20] === 8) {
            f.write([echoReply(p)]);
            replied++;
          }
        }
      });
      const ping = nsSpawn(ns.name, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.200.50.2']);
      expect(await ping.exited).toBe(0);
      expect(ping.output()).toMatch(/3 received/);
      const req = got.find((p) => p[9] === 1);
      expect(req).toBeDefined();
      expect(Buffer.from(req!.subarray(12, 20))).toEqual(
        Buffer.from([10, 200, 50, 1, 10, 200, 50, 2]),
      );
      expect(replied).toBe(3);
      expect(f.stats.txPackets).toBe(3);
      expect(f.stats.rxPackets).toBeGreaterThanOrEqual(3);
      // a packet that is not IPv4/IPv6 is dropped and counted, not thrown
      f.write([Buffer.from([0x00, 1, 2, 3])]);
      expect(f.stats.txDropped).toBe(1);
    } finally {
      f.close();
    }
    // non-persistent: gone with the last fd
    expect(await linkJson(ns.name, 'awg-n1')).toBeUndefined();
    expect(() => f.write([Buffer.alloc(20)])).toThrow(/closed/);
  });
});

describe.skipIf(skip)('native: TUN deleted under a reader', () => {
  const ns = useNetns('native-del');

  it('reports an error through onError and stops delivering', async () => {
    tun!.createPersistentTun('awg-n4', { netns: ns.name, owner: 0 });
    const f = tunFile!.TunFile.open('awg-n4', { netns: ns.name });
    try {
      const errors: Error[] = [];
      f.onError((e) => errors.push(e));
      f.onReceive(() => {});
      await nsExec(ns.name, 'ip', ['link', 'del', 'awg-n4']);
      await until(() => errors[0], 'read error');
      expect(errors[0]!.message).toMatch(/EBADFD|EFAULT|EIO/);
      expect(() => f.write([Buffer.from('45000014000000004001000000000000', 'hex')])).toThrow();
    } finally {
      f.close();
    }
  });
});

describe.skipIf(skip)('native: rtnetlink', () => {
  const ns = useNetns('native-nl');

  it('sees a route added by ip with its pid, and our own address add with our portid and IFA_PROTO', async () => {
    tun!.createPersistentTun('awg-n2', { netns: ns.name, owner: 0 });
    await nsExec(ns.name, 'ip', ['link', 'set', 'awg-n2', 'up']);
    const mon = nl!.openMonitor({ netns: ns.name });
    const req = nl!.NetlinkSocket.open({ netns: ns.name });
    const events: import('../../src/native/rtnl.js').RtnlEvent[] = [];
    mon.listen((evs) => events.push(...evs));
    try {
      expect(req.portid).not.toBe(mon.portid);
      const links = nl!.dumpLinks(req);
      const link = links.find((l) => l.ifname === 'awg-n2');
      expect(link).toBeDefined();
      expect(link!.kind).toBe('tun');
      expect(links.find((l) => l.ifname === 'lo')).toBeDefined();

      const ipProc = nsSpawn(ns.name, 'ip', [
        'route',
        'add',
        '10.200.60.0/24',
        'dev',
        'awg-n2',
        'proto',
        '123',
        'table',
        '1234',
      ]);
      expect(await ipProc.exited).toBe(0);
      const route = await until(
        () => events.find((e) => e.type === 'newroute' && e.dst === '10.200.60.0/24'),
        'route event',
      );
      expect(route).toMatchObject({
        type: 'newroute',
        portid: ipProc.pid,
        protocol: 123,
        table: 1234,
        family: rtnl!.AF_INET,
        ifindex: link!.ifindex,
      });

      nl!.addAddress(req, { ifindex: link!.ifindex, cidr: '10.200.61.1/32', proto: 99 });
      const a4 = await until(
        () => events.find((e) => e.type === 'newaddr' && e.address === '10.200.61.1'),
        'v4 address event',
      );
      expect(a4).toMatchObject({
        portid: req.portid,
        proto: 99,
        prefixlen: 32,
        ifindex: link!.ifindex,
      });

      nl!.addAddress(req, {
        ifindex: link!.ifindex,
        cidr: 'fd00:200::61:1/128',
        proto: 99,
        nodad: true,
      });
      const a6 = await until(
        () => events.find((e) => e.type === 'newaddr' && e.address === 'fd00:200::61:1'),
        'v6 address event',
      );
      // IPv6 address notifications carry pid 0 even for our own request: IFA_PROTO tells them apart
      expect(a6).toMatchObject({ proto: 99, prefixlen: 128 });
      const tags = { portids: [req.portid], addrProto: 99, routeProtocol: 167 };
      expect([route, a4, a6].map((e) => rtnl!.isOwnEvent(e, tags))).toEqual([false, true, true]);

      const shown = (
        JSON.parse(
          (await nsExec(ns.name, 'ip', ['-j', 'addr', 'show', 'dev', 'awg-n2'])).stdout,
        ) as Array<{ addr_info: Array<{ local: string }> }>
      )[0];
      expect(shown?.addr_info.map((a) => a.local)).toEqual(
        expect.arrayContaining(['10.200.61.1', 'fd00:200::61:1']),
      );
      const dumped = nl!
        .dumpAddresses(req)
        .filter((a) => a.ifindex === link!.ifindex && a.proto === 99);
      expect(dumped.map((a) => a.address).sort()).toEqual(['10.200.61.1', 'fd00:200::61:1']);

      // adding it twice fails with EEXIST; deleting works and is seen
      expect(() =>
        nl!.addAddress(req, { ifindex: link!.ifindex, cidr: '10.200.61.1/32', proto: 99 }),
      ).toThrow(/EEXIST/);
      nl!.deleteAddress(req, { ifindex: link!.ifindex, cidr: '10.200.61.1/32' });
      await until(
        () => events.find((e) => e.type === 'deladdr' && e.address === '10.200.61.1'),
        'deladdr event',
      );
    } finally {
      mon.close();
      req.close();
      tun!.deletePersistentTun('awg-n2', { netns: ns.name });
    }
  });

  it('reports lost events as resync when the receive buffer overflows', async () => {
    tun!.createPersistentTun('awg-n3', { netns: ns.name, owner: 0 });
    await nsExec(ns.name, 'ip', ['link', 'set', 'awg-n3', 'up']);
    const mon = nl!.openMonitor({ netns: ns.name, rcvbuf: 1024 });
    const events: import('../../src/native/rtnl.js').RtnlEvent[] = [];
    try {
      // fill the socket while nothing reads it, then start listening
      const batch = Array.from(
        { length: 200 },
        (_, i) => `route add 10.200.${70 + (i >> 8)}.${i & 255}/32 dev awg-n3 proto 124`,
      ).join('\n');
      await nsExec(ns.name, 'ip', ['-batch', '-'], { input: batch + '\n' });
      mon.listen((evs) => events.push(...evs));
      await until(() => events.find((e) => e.type === 'resync'), 'resync');
      // the monitor keeps working after the overflow
      await nsExec(ns.name, 'ip', ['route', 'add', '10.200.79.0/24', 'dev', 'awg-n3']);
      await until(
        () => events.find((e) => e.type === 'newroute' && e.dst === '10.200.79.0/24'),
        'route after resync',
      );
    } finally {
      mon.close();
      tun!.deletePersistentTun('awg-n3', { netns: ns.name });
    }
  });
});
