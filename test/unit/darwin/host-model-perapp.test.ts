/**
 * Per-app routing on macOS, end to end on the host model (host-model-perapp-rig.ts): the
 * router is up before the anchor that redirects to it, apps are routed by rule, rule edits and
 * removals, drift of the redirect, a router that cannot listen. The model's PF (pf-eval.ts
 * pfPath) shows where an app's SYN goes. Health-driven fallbacks are in
 * host-model-perapp-fallbacks.test.ts, awg exec in host-model-perapp-exec.test.ts. Verified on
 * the model only (docs/platform-macos.md).
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pfPath } from '../../helpers/macos-host/pf-eval.js';
import { ENDPOINT_UDP, WEB } from '../../helpers/macos-host/scenario.js';
import { cleanups, reachable, runCleanups, setup } from './host-model-perapp-rig.js';

afterEach(runCleanups);

describe('macOS host model: per-app rules through the daemon and its flow router', () => {
  it('router up before the anchor redirects to it; apps routed by rule; a rule edit judges the next connection; down restores the host and closes the router', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    expect(t.listeningAtLoad).toEqual([true]);
    expect(t.host.pf.nat).toContain('rdr-anchor "com.awg/*" all');

    // PF on the model: a user app's SYN is redirected to the router, root's is not (route-to
    // skips uid 0), user UDP goes to the router too (host-model-udp.test.ts), the engine's own
    // UDP passes
    const app = { ...WEB, uid: 501 };
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    expect(pfPath(t.host, { ...app, iface: 'utun0' })).toEqual({
      redirect: '127.0.0.1',
      port: t.port,
    });
    expect(pfPath(t.host, { ...app, uid: 0 })).toBe('out');
    expect(pfPath(t.host, { ...app, proto: 'udp', dport: 443 })).toEqual({
      redirect: '127.0.0.1',
      port: t.port,
    });
    expect(pfPath(t.host, { ...ENDPOINT_UDP, uid: 0 })).toBe('out');
    // the endpoint and loopback are in the skip table: never redirected
    expect(pfPath(t.host, { ...app, dst: '198.51.100.7' })).toBe('out');

    // the router on this host's loopback: Mail into the tunnel's utun, curl direct on en0,
    // telemetry blocked, an app no rule matches takes the default (the tunnel)
    expect(await t.appConnect(530, 'mail')).toBe('dst:mail');
    expect(await t.appConnect(601, 'curl')).toBe('dst:curl');
    expect(await t.appConnect(602, 'beacon')).toBe('reset');
    expect(await t.appConnect(603, 'notes')).toBe('dst:notes');
    expect(t.pinned).toEqual(['utun0/4', 'en0/4', 'utun0/4']);
    expect(t.dst.seen).toEqual(['mail', 'curl', 'notes']);
    const st = await t.d.status();
    // blocked: telemetry and the probe of the port at the anchor load (no owner: reset)
    expect(st.placement).toMatchObject({
      state: 'active',
      reason: expect.stringMatching(
        new RegExp(`port ${t.port}; connections so far: blocked 2, direct 1, home 2$`),
      ),
    });
    // per-rule counters: each rule's connections through the router and their payload (the
    // app's message out, the destination's `dst:` answer back); Notes matched no rule
    const byRule = Object.fromEntries((st.rules ?? []).map((r) => [r.name, r]));
    expect(byRule).toEqual({
      mail: {
        name: 'mail',
        target: 'home',
        route: 'home',
        connections: 1,
        txBytes: 4,
        rxBytes: 8,
        txPackets: 0,
        rxPackets: 0,
      },
      tools: {
        name: 'tools',
        target: 'direct',
        route: 'direct',
        connections: 1,
        txBytes: 4,
        rxBytes: 8,
        txPackets: 0,
        rxPackets: 0,
      },
      telemetry: {
        name: 'telemetry',
        target: 'block',
        route: 'blocked',
        connections: 1,
        txBytes: expect.any(Number),
        rxBytes: 0,
        txPackets: 0,
        rxPackets: 0,
      },
    });

    // the config changes Mail's rule to direct: nothing on the host changes (PF sends all user
    // TCP to the router either way); the router is updated and judges the next connection
    t.write('direct');
    t.d.wake('config');
    expect(await t.runs(2)).toMatchObject({ outcome: 'unchanged' });
    expect(await t.appConnect(530, 'mail2')).toBe('dst:mail2');
    expect(t.pinned.at(-1)).toBe('en0/4');
    expect(t.listeningAtLoad).toEqual([true]);
    // the same router: the rule's counts go on (its route is now direct)
    expect((await t.d.status()).rules?.find((r) => r.name === 'mail')).toMatchObject({
      route: 'direct',
      connections: 2,
      txBytes: 9,
      rxBytes: 17,
    });

    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    expect(pfPath(t.host, app)).toBe('out');
    expect(await reachable(t.port)).toBe(false);
    expect((await t.d.status()).placement?.state).toBe('off');
    expect((await t.d.status()).rules).toBeUndefined(); // down: no config, no counters
    await t.d.stop();
  });

  it('rules removed from the config: the anchor without rdr loads, then the router closes', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    expect(await reachable(t.port)).toBe(true);
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(t.host.pf.anchorNat.get('com.awg/awg')).toEqual([]);
    expect(pfPath(t.host, { ...WEB, uid: 501 })).toBe('out');
    expect(await reachable(t.port)).toBe(false);
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it('drift of the redirect is found and repaired: our translation rules flushed, the main ruleset reloaded without our hooks', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    const app = { ...WEB, uid: 501 };
    t.host.pf.anchorNat.set('com.awg/awg', []);
    expect(pfPath(t.host, app)).toBe('lo0'); // fail-closed meanwhile: routed to lo0, nothing redirects it
    t.d.wake('drift-timer');
    expect(await t.runs(2)).toMatchObject({ outcome: 'converged' });
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    t.host.pfctlReload();
    expect(pfPath(t.host, app)).toBe('out'); // our anchor is not evaluated at all now
    t.d.wake('drift-timer');
    expect(await t.runs(3)).toMatchObject({ outcome: 'converged' });
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it('the router cannot listen (its port is taken): the run fails before anything on the host changes', async () => {
    // the squatter takes its port first: a port found free and listened on later can be taken
    // in between (CI's three unit runs share the host's loopback: EADDRINUSE, then a hang)
    const squat = createServer();
    await new Promise<void>((r, j) => squat.once('error', j).listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => squat.close(() => r())));
    const t = await setup({ port: (squat.address() as { port: number }).port });
    await t.d.start();
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (!t.events.some((e) => e.type === 'reconcile-finished'))
      await new Promise((r) => setTimeout(r, 2));
    expect(t.events.find((e) => e.type === 'reconcile-finished')).toMatchObject({
      outcome: 'failed',
      error: {
        kind: 'driver',
        message: expect.stringMatching(
          new RegExp(
            `^the flow router cannot listen on 127\\.0\\.0\\.1/::1 port ${t.port} \\(TCP and UDP; routing\\.proxyPortBase\\)`,
          ),
        ),
      },
    });
    expect(t.host.mutations).toBe(0);
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });
});
