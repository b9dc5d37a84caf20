/**
 * Child process for the proxy netns tests and the Step 6 benchmark: runs a TransparentProxy
 * (and optionally a SOCKS5 UDP relay and a health checker) inside the namespace it was
 * started in (`nsenter --net=…`), because every socket must be created in that namespace.
 *
 * argv[2]: JSON HarnessConfig. stdout: one JSON object per line — {ready}, {event}, {stats}.
 * stdin: `stats` → prints {stats}; `exit` → closes everything and exits.
 */
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { directDialer } from '../../src/proxy/direct.js';
import { fallbackDialer, type FallbackMode } from '../../src/proxy/fallback.js';
import { ProxyHealth, httpProbe, socks5Probe } from '../../src/proxy/upstream-health.js';
import { httpConnectDialer } from '../../src/proxy/http-connect.js';
import { socks5Dialer, type ProxyAuth } from '../../src/proxy/socks5.js';
import { Socks5UdpRelay } from '../../src/proxy/socks5-udp.js';
import { TransparentProxy } from '../../src/proxy/transparent.js';
import { formatDst, type Destination, type Dialer } from '../../src/proxy/types.js';
import { ProxyTunnelRuntime } from '../../src/proxy/tunnel.js';
import type { ProxyTunnel } from '../../src/config/schema.js';

export interface UpstreamConfig {
  type: 'socks5' | 'http';
  server: string;
  port: number;
  auth?: ProxyAuth;
}

export interface HarnessConfig {
  listenPort: number;
  upstreams: UpstreamConfig[];
  fallback: FallbackMode;
  bypassMark: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
  /** consult a ProxyHealth of upstream 0 before dialling (and report its changes) */
  health?: { intervalMs: number };
  udp?: { listenHost: string; listenPort: number; target: { host: string; port: number } };
  /** run the daemon-facing ProxyTunnelRuntime (from a config-shaped tunnel) instead of the parts */
  runtime?: { tunnel: ProxyTunnel; password?: string };
}

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const cfg = JSON.parse(process.argv[2] ?? '{}') as HarnessConfig;

if (cfg.runtime) {
  const rt = new ProxyTunnelRuntime({
    name: 'px',
    upstream: {
      ...cfg.runtime.tunnel,
      auth: cfg.runtime.tunnel.auth && {
        username: cfg.runtime.tunnel.auth.username,
        password: cfg.runtime.password ?? '',
      },
    },
    redirectPort: cfg.listenPort,
    bypassMark: cfg.bypassMark,
    fallback: cfg.fallback,
    udpForwards: cfg.udp
      ? [{ listen: { host: cfg.udp.listenHost, port: cfg.udp.listenPort }, target: cfg.udp.target }]
      : [],
    healthIntervalMs: cfg.health?.intervalMs,
  });
  rt.on('state', (c) =>
    out({
      event: 'health',
      from: c.from,
      to: c.to,
      kind: c.error?.kind,
      message: c.error?.message,
    }),
  );
  rt.on('dial-error', (f) =>
    out({ event: 'dial-error', dst: f.dst, kind: f.kind, message: f.error.message }),
  );
  await rt.start();
  out({ ready: { port: rt.proxy.address()?.port, udp: rt.relays[0]?.address() } });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'stats') {
      const st = rt.stats();
      out({
        stats: { proxy: st.tcp, udp: st.udp[0], health: st.health, rss: process.memoryUsage().rss },
      });
    } else if (cmd === 'exit') void rt.stop().then(() => process.exit(0));
  });
  rl.on('close', () => process.exit(0));
} else {
  function dialerOf(u: UpstreamConfig): Dialer {
    const o = {
      server: u.server,
      port: u.port,
      auth: u.auth,
      bypassMark: cfg.bypassMark,
      timeoutMs: 5000,
    };
    return u.type === 'socks5' ? socks5Dialer(o) : httpConnectDialer(o);
  }

  let health: ProxyHealth | undefined;
  if (cfg.health) {
    const u = cfg.upstreams[0]!;
    const o = {
      server: u.server,
      port: u.port,
      auth: u.auth,
      bypassMark: cfg.bypassMark,
      timeoutMs: 3000,
    };
    health = new ProxyHealth({
      probe: u.type === 'socks5' ? socks5Probe(o) : httpProbe(o),
      intervalMs: cfg.health.intervalMs,
      backoff: { initialMs: cfg.health.intervalMs, maxMs: cfg.health.intervalMs },
    });
    health.on('change', (c) =>
      out({
        event: 'health',
        from: c.from,
        to: c.to,
        kind: c.error?.kind,
        message: c.error?.message,
      }),
    );
  }

  const candidates = cfg.upstreams.map(dialerOf);
  const direct = directDialer({ bypassMark: cfg.bypassMark, timeoutMs: 5000 });
  // one fallback dialer per connection, so that each fallback event names its client and
  // destination (a test that counts them can say which connection a surplus one came from)
  const dialFor = (client: Socket | undefined, dst: Destination | undefined): Dialer =>
    fallbackDialer({
      candidates,
      mode: cfg.fallback,
      direct,
      isUp: health
        ? (i) => i !== 0 || health.state === 'up' || health.state === 'unknown'
        : undefined,
      onFallback: (a) =>
        out({
          event: 'fallback',
          failed: a.failed,
          kind: a.error.kind,
          message: a.error.message,
          decision: a.decision,
          client: client && `${client.remoteAddress}:${client.remotePort}`,
          dst: dst && formatDst(dst),
        }),
    });

  const dial = dialFor(undefined, undefined);
  const proxy = new TransparentProxy({
    listen: { host: '::', port: cfg.listenPort },
    dial,
    dialFor,
    idleTimeoutMs: cfg.idleTimeoutMs,
    maxConnections: cfg.maxConnections,
  });
  proxy.on('dial-error', (f) =>
    out({ event: 'dial-error', dst: f.dst, kind: f.kind, message: f.error.message }),
  );

  let relay: Socks5UdpRelay | undefined;
  if (cfg.udp) {
    const u = cfg.upstreams[0]!;
    relay = new Socks5UdpRelay({
      listen: { host: cfg.udp.listenHost, port: cfg.udp.listenPort },
      target: cfg.udp.target,
      socks: {
        server: u.server,
        port: u.port,
        auth: u.auth,
        bypassMark: cfg.bypassMark,
        timeoutMs: 5000,
      },
    });
    relay.on('associate-error', (e) =>
      out({ event: 'associate-error', kind: e.kind, message: e.message }),
    );
  }

  const addr = await proxy.start();
  const udpAddr = relay ? await relay.start() : undefined;
  if (health) {
    health.start();
  }
  out({ ready: { port: addr.port, udp: udpAddr } });

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'stats')
      out({
        stats: {
          proxy: proxy.stats(),
          udp: relay?.stats(),
          health: health?.state,
          rss: process.memoryUsage().rss,
        },
      });
    else if (cmd === 'health')
      void health?.check().then((s) => out({ healthNow: s, message: health?.lastError?.message }));
    else if (cmd.startsWith('get ')) {
      // get HOST PORT PATH: one HTTP/1.0 GET through the dialer (destinations by host name)
      const [, host = '', port = '0', path = '/'] = cmd.split(' ');
      void dial({ host, port: Number(port) }).then(
        (s) => {
          let body = '';
          s.on('data', (d: Buffer) => (body += d.toString()));
          s.on('end', () => out({ got: body.split('\r\n\r\n').slice(1).join('\r\n\r\n') }));
          s.on('error', (e: Error) => out({ got: null, message: e.message }));
          s.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
          s.resume();
        },
        (e: Error) => out({ got: null, message: e.message, kind: (e as { kind?: string }).kind }),
      );
    } else if (cmd === 'exit') {
      health?.stop();
      void Promise.all([proxy.close(), relay?.close()]).then(() => process.exit(0));
    }
  });
  rl.on('close', () => process.exit(0));
}
