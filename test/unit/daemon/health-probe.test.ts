import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { loadConfigText } from '../../../src/config/load.js';
import { TunnelProber, probeSpecs, type ProbeRunner } from '../../../src/daemon/health-probe.js';
import { runProbe } from '../../../src/daemon/probe-run.js';
import { connectTcp } from '../../../src/native/tcpsock.js';
import { durationMs } from '../../../src/config/schema-health.js';
import { flowsOf, resetCandidates, tunnelOfSocket } from '../../../src/daemon/conn-reset.js';
import type { InetSocket } from '../../../src/native/sockdiag.js';

const cfg = (health: unknown) =>
  Config.parse({
    version: 1,
    tunnels: { t1: { type: 'socks5', server: '10.0.0.1', ...(health ? { health } : {}) } },
    rules: [],
  });

describe('tunnels.<name>.health checks', () => {
  const issues = (t: string) =>
    loadConfigText(`version: 1\ntunnels:\n  t1:\n${t}rules: []\n`, '/c.yaml').issues.map(
      (i) => `${i.line}: ${i.message}`,
    );
  const wg =
    '    type: wireguard\n    privateKey: {env: K}\n    addresses: [10.0.0.2/32]\n    peers: [{publicKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", endpoint: "1.2.3.4:51820", allowedIPs: [0.0.0.0/0]}]\n';
  it('timeout < interval, interval >= 1s, addresses on a link, icmp only with a link', () => {
    expect(
      issues(`${wg}    health: {probe: {tcp: "10.9.0.1:80"}, interval: 5s, timeout: 5s}\n`).join(),
    ).toMatch(/timeout 5s must be less than interval 5s/);
    expect(
      issues(
        `${wg}    health: {probe: {tcp: "10.9.0.1:80"}, interval: 500ms, timeout: 100ms}\n`,
      ).join(),
    ).toMatch(/interval 500ms is below 1s/);
    expect(issues(`${wg}    health: {probe: {url: "http://example.org/"}}\n`).join()).toMatch(
      /needs an address, not the name "example.org"/,
    );
    expect(
      issues(
        `    type: socks5\n    server: 10.0.0.1\n    health: {probe: {icmp: 10.9.0.1}}\n`,
      ).join(),
    ).toMatch(/icmp probe needs a tunnel with a link/);
    expect(issues(`${wg}    health: {probe: {url: "https://10.0.0.1/"}}\n`).join()).toMatch(
      /http:\/\//,
    );
    expect(issues(`${wg}    health: {probe: {icmp: 10.9.0.1}, failures: 3}\n`).join()).not.toMatch(
      /health/,
    );
  });
});

describe('durationMs (local until the lists-by-URL parser lands)', () => {
  it('parses units and sums', () => {
    expect(durationMs('10s')).toBe(10_000);
    expect(durationMs('1h30m')).toBe(5_400_000);
    expect(durationMs('500ms')).toBe(500);
    expect(durationMs('1d')).toBe(86_400_000);
    expect(durationMs('10')).toBeUndefined();
    expect(durationMs('s')).toBeUndefined();
  });
});

describe('TunnelProber', () => {
  afterEach(() => vi.useRealTimers());

  it('reports failed after `failures` consecutive failures, clear after one success', async () => {
    vi.useFakeTimers();
    let ok = true;
    // when the last probe ran, on the (fake) clock: the assertions below compare with it, not
    // with the clock after advancing, which a busy worker's fake clock may have moved past it
    let ranAt = 0;
    const run: ProbeRunner = () => {
      ranAt = Date.now();
      return ok ? Promise.resolve() : Promise.reject(new Error('refused'));
    };
    const reports: (string | undefined)[] = [];
    const p = new TunnelProber({
      run,
      dialer: () => () => Promise.reject(new Error('unused')),
      report: (_t, f) => reports.push(f),
    });
    p.sync(cfg({ probe: { tcp: '10.9.0.1:80' }, interval: '10s', timeout: '5s', failures: 2 }));
    await vi.advanceTimersByTimeAsync(0);
    expect(reports).toEqual([]);
    expect(p.stateOf('t1')).toEqual({ failures: 0 });
    expect(p.stateOf('t2')).toBeUndefined();
    ok = false;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(p.failuresOf('t1')).toBe(1);
    expect(reports).toEqual([]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(/tcp 10\.9\.0\.1:80: refused \(2 in a row\)/);
    // status: the consecutive failures and the last one's reason and time
    expect(p.stateOf('t1')).toEqual({
      failures: 2,
      lastFailure: 'tcp 10.9.0.1:80: refused',
      lastFailureAt: new Date(ranAt).toISOString(),
    });
    ok = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(reports).toHaveLength(2);
    expect(reports[1]).toBeUndefined();
    // a success clears the count; the last failure stays to be read
    expect(p.stateOf('t1')).toMatchObject({ failures: 0, lastFailure: 'tcp 10.9.0.1:80: refused' });
    p.close();
  });

  it('a probe that never answers fails at its timeout', async () => {
    vi.useFakeTimers();
    const reports: { why: string | undefined; at: number }[] = [];
    let startedAt: number | undefined;
    const p = new TunnelProber({
      run: () => {
        startedAt ??= Date.now();
        return new Promise<void>(() => {});
      },
      dialer: () => () => Promise.reject(new Error('unused')),
      report: (_t, why) => reports.push({ why, at: Date.now() }),
    });
    p.sync(cfg({ probe: { tcp: '10.9.0.1:80' }, interval: '2s', timeout: '1s', failures: 1 }));
    await vi.advanceTimersByTimeAsync(1_500);
    // reported at the timeout, on the clock the timers fire by (not before it, not later)
    expect(reports).toHaveLength(1);
    expect(reports[0]!.why).toMatch(/no answer within 1000 ms/);
    expect(reports[0]!.at - startedAt!).toBe(1_000);
    p.close();
  });

  it('stopping a failed probe (config change) clears it', async () => {
    vi.useFakeTimers();
    const reports: (string | undefined)[] = [];
    const p = new TunnelProber({
      run: () => Promise.reject(new Error('x')),
      dialer: () => undefined,
      report: (_t, f) => reports.push(f),
    });
    p.sync(cfg({ probe: { tcp: '10.9.0.1:80' }, failures: 1 }));
    await vi.advanceTimersByTimeAsync(0);
    expect(reports).toHaveLength(1);
    p.sync(cfg(undefined));
    expect(reports).toEqual([expect.any(String), undefined]);
    p.close();
  });

  it('probeSpecs reads the defaults', () => {
    const [s] = probeSpecs(cfg({ probe: { url: 'http://10.0.0.2/x' } }));
    expect(s).toMatchObject({ tunnel: 't1', intervalMs: 10_000, timeoutMs: 5_000, failures: 2 });
  });
});

describe('runProbe through a dialer', () => {
  let server: Server | undefined;
  const held: Socket[] = [];
  afterEach(() => {
    for (const s of held) s.destroy();
    server?.close();
  });

  async function listen(onConn: (s: Socket) => void): Promise<number> {
    server = createServer((s) => {
      held.push(s);
      onConn(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as { port: number }).port;
  }
  const dialer = (port: number) => () => connectTcp({ host: '127.0.0.1', port, timeoutMs: 2000 });

  it('url: a server that accepts and stalls fails at the timeout', async () => {
    const port = await listen(() => {});
    const ac = new AbortController();
    const accepted = once(server!, 'connection');
    const p = runProbe(
      { url: `http://127.0.0.1:${port}/` },
      { dialer: dialer(port) },
      {
        timeoutMs: 1000,
        signal: ac.signal,
      },
    );
    await accepted;
    ac.abort(new Error('no answer within 1000 ms'));
    await expect(p).rejects.toThrow(/no answer/);
  });

  it('url: an HTTP status line is a success', async () => {
    const port = await listen((s) => s.end('HTTP/1.1 204 No Content\r\n\r\n'));
    await expect(
      runProbe(
        { url: `http://127.0.0.1:${port}/gen` },
        { dialer: dialer(port) },
        {
          timeoutMs: 1000,
          signal: new AbortController().signal,
        },
      ),
    ).resolves.toBeUndefined();
  });

  it('url: something not HTTP fails', async () => {
    const port = await listen((s) => s.end('SSH-2.0-x\r\n'));
    await expect(
      runProbe(
        { url: `http://127.0.0.1:${port}/` },
        { dialer: dialer(port) },
        {
          timeoutMs: 1000,
          signal: new AbortController().signal,
        },
      ),
    ).rejects.toThrow(/not HTTP/);
  });

  it('a bound socket on a link that does not exist fails (never the main table)', async () => {
    const port = await listen(() => {});
    let accepted = false;
    server!.on('connection', () => (accepted = true));
    const r = runProbe(
      { tcp: `127.0.0.1:${port}` },
      { link: 'awg-nosuch' },
      {
        timeoutMs: 1000,
        signal: new AbortController().signal,
      },
    );
    await expect(r).rejects.toThrow(/SO_BINDTODEVICE|ENODEV|EPERM/);
    expect(accepted).toBe(false);
  });

  it('a host name is refused on a link (a lookup would leave the tunnel)', async () => {
    await expect(
      runProbe(
        { tcp: 'example.org:80' },
        { link: 'lo' },
        {
          timeoutMs: 1000,
          signal: new AbortController().signal,
        },
      ),
    ).rejects.toThrow(/not an address/);
  });
});

describe('conn-reset flowsOf', () => {
  const ct = (src: string, sport: number, dst: string, dport: number, mark: number, proto = 6) => ({
    family: 4 as const,
    proto,
    orig: { src, sport, dst, dport },
    reply: { src: dst, sport: dport, dst: src, dport: sport },
    mark,
  });
  it('maps TCP flows by the tunnel mark under the mask; UDP and other marks are left', () => {
    const flows = flowsOf(
      [
        ct('10.0.0.2', 40000, '1.1.1.1', 443, 0x1001_0101),
        ct('10.0.0.2', 40001, '1.1.1.1', 443, 0x102),
        ct('10.0.0.2', 40002, '1.1.1.1', 53, 0x101, 17),
      ],
      [{ tunnel: 't1', mark: 0x101 }],
      0xffff,
    );
    expect([...flows]).toEqual([['10.0.0.2|40000|1.1.1.1|443', 't1']]);
    const s = { src: '::ffff:10.0.0.2', sport: 40000, dst: '::ffff:1.1.1.1', dport: 443 };
    expect(tunnelOfSocket(s as InetSocket, flows)).toBe('t1');
    expect(tunnelOfSocket({ ...s, sport: 1 } as InetSocket, flows)).toBeUndefined();
  });
});

describe('conn-reset resetCandidates', () => {
  const marks = [
    { tunnel: 't1', mark: 0x10000 },
    { tunnel: 't2', mark: 0x20000 },
    { tunnel: 't3', mark: 0x30000 },
  ];
  const rules = [
    { target: 't1', fallback: 'allow-direct' },
    { target: 't2', fallback: 'block' },
    { target: 't3', fallback: 'failover', enabled: false },
  ];
  it('resets a tunnel that just went down and has a rule with somewhere to go', () => {
    const down = new Set(['t1', 't2', 't3']);
    expect(resetCandidates(marks, down, new Set(), rules).map((m) => m.tunnel)).toEqual(['t1']);
  });
  it('not again while it stays down, nor a tunnel only block rules (or a disabled rule) route into', () => {
    expect(resetCandidates(marks, new Set(['t1']), new Set(['t1']), rules)).toEqual([]);
    expect(resetCandidates(marks, new Set(['t2', 't3']), new Set(), rules)).toEqual([]);
    expect(
      resetCandidates(marks, new Set(['t2']), new Set(), [
        ...rules,
        { target: 't2', fallback: 'failover' },
      ]).map((m) => m.tunnel),
    ).toEqual(['t2']);
  });
});
