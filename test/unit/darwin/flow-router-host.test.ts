/**
 * The daemon's host of the macOS flow router (resources/flow/flow-router-host.ts): its
 * per-rule counters and `awg exec` registrations across a rebuild. The router runs on this host's loopback with fake
 * system calls (pcblist_n bytes, proc_pidpath by table, DIOCNATLOOK answering a local server).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { darwinTrafficSource } from '../../../src/procs/top/darwin.js';
import { loadConfigText } from '../../../src/config/load.js';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';
import type { DarwinFlowNatives } from '../../../src/resources/flow/flow-router-darwin.js';
import { FlowRouterHost } from '../../../src/resources/flow/flow-router-host.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';
import { exchange, freePort, routeServer } from '../../helpers/route-servers.js';
import { eventually } from '../../helpers/eventually.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('FlowRouterHost', () => {
  it("a rebuild (the router's port changed) keeps each rule's counts; stop ends them", async () => {
    const dst = await routeServer('dst');
    cleanups.push(() => new Promise<void>((r) => dst.server.close(() => r())));
    const owners = new Map<number, number>();
    const natives: DarwinFlowNatives = {
      sysctl: () =>
        cat([
          xinpgen(owners.size),
          ...[...owners].flatMap(([p, pid]) => [
            inpcb(false, [127, 0, 0, 1], p, [127, 0, 0, 1], dst.port, BigInt(p)),
            xsocket(501, pid, 0),
            ...rest(4),
          ]),
          xinpgen(owners.size),
        ]),
      pidPath: (pid) => (pid === 601 ? '/usr/bin/curl' : undefined),
      originalDst: () => ({ address: '127.0.0.1', port: dst.port }),
      boundTcpFd: () => {
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        return fd;
      },
    };
    const host = new FlowRouterHost({
      natives: async () => natives,
      state: new MemoryStateStore(),
      tunnelUp: () => true,
      proxyDialer: () => undefined,
      physical: () => 'en0',
      subnets: () => [],
    });
    cleanups.push(() => host.stop());
    const config = (port: number) => {
      const r = loadConfigText(
        `version: 1\nrules:\n  - name: tools\n    match: { dir: /usr/bin }\n    target: direct\nrouting: { proxyPortBase: ${port} }\n`,
        'awg.yaml',
      );
      if (!r.config) throw new Error(JSON.stringify(r.issues));
      return r.config;
    };
    const curl = async (port: number, msg: string) => {
      const local = await freePort();
      owners.set(local, 601);
      return exchange(port, local, msg);
    };
    const first = await freePort();
    await host.before(config(first));
    expect(await curl(first, 'one')).toBe('dst:one');
    expect(host.ruleTraffic().get('tools')).toEqual({ connections: 1, txBytes: 3, rxBytes: 7 });

    const second = await freePort();
    await host.before(config(second)); // another port: a new router
    expect(host.status()).toMatchObject({ state: 'active', port: second });
    expect(await curl(second, 'two!')).toBe('dst:two!');
    expect(host.ruleTraffic().get('tools')).toEqual({ connections: 2, txBytes: 7, rxBytes: 15 });
    // the monitor's per-flow reading: the replaced router's connection (closed with it) and the new one's
    await eventually(() => expect(host.flows().every((f) => f.closed)).toBe(true));
    const src = darwinTrafficSource({
      nettop: false,
      routed: () => host.flows(),
      procs: {
        pids: () => [601],
        path: () => '/usr/bin/curl',
        info: () => ({ ppid: 1, comm: 'curl', uid: 501 }),
      },
    });
    const r = await src.read();
    expect(r.flows.map((f) => [f.pid, f.rule, f.route, f.sent, f.received, f.closed])).toEqual([
      [601, 'tools', 'direct', 3, 7, true],
      [601, 'tools', 'direct', 4, 8, true],
    ]);
    expect(r.processes.get(601)).toEqual({
      pid: 601,
      name: 'curl',
      uid: 501,
      exe: '/usr/bin/curl',
    });

    await host.stop();
    expect(host.ruleTraffic()).toEqual(new Map());
  });

  it('awg exec registrations: kept across a rebuild and honoured by the new router; ended when an edit removes their rule or tunnel, and by stop; none without parents (ppid) or without a router', async () => {
    const dst = await routeServer('dst');
    cleanups.push(() => new Promise<void>((r) => dst.server.close(() => r())));
    const owners = new Map<number, number>();
    const natives: DarwinFlowNatives = {
      sysctl: () =>
        cat([
          xinpgen(owners.size),
          ...[...owners].flatMap(([p, pid]) => [
            inpcb(false, [127, 0, 0, 1], p, [127, 0, 0, 1], dst.port, BigInt(p)),
            xsocket(501, pid, 0),
            ...rest(4),
          ]),
          xinpgen(owners.size),
        ]),
      pidPath: (pid) => (pid === 601 ? '/opt/agent/agent' : undefined),
      ppid: (pid) => ({ 601: 700, 700: 1 })[pid],
      originalDst: () => ({ address: '127.0.0.1', port: dst.port }),
      boundTcpFd: () => {
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        return fd;
      },
    };
    const host = new FlowRouterHost({
      natives: async () => natives,
      state: new MemoryStateStore(),
      tunnelUp: () => true,
      proxyDialer: () => undefined,
      physical: () => 'en0',
      subnets: () => [],
    });
    cleanups.push(() => host.stop());
    const config = (port: number, rules = ['allowed', 'agent']) => {
      const r = loadConfigText(
        `version: 1\nrules:\n${rules.map((n) => `  - name: ${n}\n    match: { dir: /opt/${n === 'agent' ? 'agent' : 'nothing'} }\n    target: ${n === 'agent' ? 'block' : 'direct'}\n`).join('')}routing: { proxyPortBase: ${port} }\n`,
        'awg.yaml',
      );
      if (!r.config) throw new Error(JSON.stringify(r.issues));
      return r.config;
    };
    const agent = async (port: number, msg: string) => {
      const local = await freePort();
      owners.set(local, 601);
      return exchange(port, local, msg);
    };
    expect(() => host.registerExec(700, { direct: true }, () => {})).toThrow(/runs none now/);
    const first = await freePort();
    await host.before(config(first));
    expect(await agent(first, 'x')).toBe('reset'); // the agent rule blocks it
    const ends: string[] = [];
    host.registerExec(700, { rule: 'allowed' }, (r) => ends.push(r));
    expect(() => host.registerExec(701, { tunnel: 'work' }, () => {})).toThrow(
      'awg exec --tunnel work: unknown tunnel "work" (the config has no tunnels) in the applied configuration',
    );
    expect(await agent(first, 'x')).toBe('reset'); // a rule matches the agent itself: the rules judge it
    await host.before(config(first, ['agent', 'other']));
    expect(ends).toEqual([
      'the config changed: awg exec --rule allowed: no enabled rule named "allowed" (rules: agent, other)',
    ]);
    const off = host.registerExec(700, { direct: true }, (r) => ends.push(r));
    const second = await freePort();
    await host.before(config(second)); // another port: a new router, the same registration
    expect(await agent(second, 'out')).toBe('dst:out');
    expect(host.execs.list()).toEqual([{ pid: 700, choice: { direct: true } }]);
    off();
    expect(await agent(second, 'y')).toBe('reset');
    host.registerExec(700, { direct: true }, (r) => ends.push(r));
    await host.stop();
    expect(ends.at(-1)).toMatch(/^the flow router stopped/);
    expect(host.execs.size).toBe(0);

    const { ppid: _ppid, ...withoutPpid } = natives;
    const blind = new FlowRouterHost({
      natives: async () => withoutPpid,
      state: new MemoryStateStore(),
      tunnelUp: () => true,
      proxyDialer: () => undefined,
      physical: () => 'en0',
      subnets: () => [],
    });
    cleanups.push(() => blind.stop());
    await blind.before(config(await freePort()));
    expect(() => blind.registerExec(700, { direct: true }, () => {})).toThrow(
      /cannot read processes' parents/,
    );
  });
});
