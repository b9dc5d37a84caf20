/**
 * A fake SOCKS5 server on loopback for the UDP ASSOCIATE tests: no authentication, each
 * association with a relay socket of its own (BND.ADDR 0.0.0.0: "the address you reached me
 * at"), echoing each frame as `echo:<data>` from the destination it names. It can delay the
 * ASSOCIATE reply, refuse it, and send raw datagrams to a client.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SocksClient } from 'socks';

export interface FakeAssociation {
  control: Socket;
  relay: UdpSocket;
  /** the client's UDP address, once its first datagram arrived */
  client: Promise<{ address: string; port: number }>;
  /** destinations the client's frames named, in order */
  destinations: string[];
  closed: boolean;
}

export interface FakeSocks {
  port: number;
  associations: FakeAssociation[];
  /** REP of the next ASSOCIATE replies (0: success; 7: command not supported) */
  rep: number;
  /** the ASSOCIATE reply waits for this while set */
  hold: Promise<void> | undefined;
  /** a raw datagram from association `i`'s relay to its client */
  send(i: number, frame: Buffer): Promise<void>;
  close(): Promise<void>;
}

export async function fakeSocks(): Promise<FakeSocks> {
  const fake: FakeSocks = {
    port: 0,
    associations: [],
    rep: 0,
    hold: undefined,
    async send(i, frame) {
      const a = fake.associations[i]!;
      const c = await a.client;
      await new Promise<void>((r) => a.relay.send(frame, c.port, c.address, () => r()));
    },
    async close() {
      for (const a of fake.associations) a.control.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
  const tcp: Server = createServer((s) => {
    let stage = 0;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      if (stage === 0) {
        s.write(Buffer.from([5, 0])); // no authentication
        stage = 1;
        return;
      }
      if (stage !== 1) return;
      stage = 2;
      if (d[1] !== 3) return void s.destroy(); // UDP ASSOCIATE only
      void (async () => {
        await fake.hold;
        if (fake.rep !== 0) return void s.end(Buffer.from([5, fake.rep, 0, 1, 0, 0, 0, 0, 0, 0]));
        const relay = createSocket('udp4');
        await new Promise<void>((r) => relay.bind(0, '127.0.0.1', r));
        let seen!: (a: { address: string; port: number }) => void;
        const a: FakeAssociation = {
          control: s,
          relay,
          client: new Promise((r) => (seen = r)),
          destinations: [],
          closed: false,
        };
        fake.associations.push(a);
        s.on('close', () => {
          if (a.closed) return;
          a.closed = true;
          relay.close();
        });
        relay.on('message', (m, r) => {
          seen({ address: r.address, port: r.port });
          const f = SocksClient.parseUDPFrame(m);
          a.destinations.push(`${f.remoteHost.host}:${f.remoteHost.port}`);
          relay.send(
            SocksClient.createUDPFrame({
              remoteHost: f.remoteHost,
              data: Buffer.concat([Buffer.from('echo:'), f.data]),
            }),
            r.port,
            r.address,
          );
        });
        const port = relay.address().port;
        s.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, port >> 8, port & 0xff]));
      })();
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  fake.port = (tcp.address() as AddressInfo).port;
  return fake;
}
