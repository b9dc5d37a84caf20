/**
 * `awg exec` on macOS through the daemon's flow router (host-model-perapp-rig.ts): registered
 * process trees routed past the rules, refusals, ends; and end to end from the CLI through
 * the API. Verified on the model only (docs/platform-macos.md).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { capturingCli, macCallers } from '../../helpers/macos-host/daemon.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { execCommand } from '../../../src/cli/commands/exec.js';
import { cleanups, runCleanups, setup } from './host-model-perapp-rig.js';

afterEach(runCleanups);

describe('macOS host model: per-app rules through the daemon and its flow router', () => {
  it("awg exec through the daemon: --tunnel takes a registered process's tree past the rules (curl and its git child into the tunnel), --direct a blocked app out; a re-parented grandchild and an ended registration take the rules; a config without rules ends the rest with a reason", async () => {
    const t = await setup();
    const ends: string[] = [];
    const end = (pid: number) => (reason: string) => ends.push(`${pid}: ${reason}`);
    await expect(t.d.routeExec(650, { tunnel: 'home' }, end(650))).rejects.toMatchObject({
      kind: 'unsupported',
      message: expect.stringMatching(
        /^awg exec on macOS routes through the daemon's flow router, which runs only while/,
      ),
    });
    await t.d.start();
    await t.runs(1);
    await expect(t.d.routeExec(650, { tunnel: 'nope' }, end(650))).rejects.toMatchObject({
      kind: 'invalid-config',
      message:
        'awg exec --tunnel nope: unknown tunnel "nope" (tunnels: home) in the applied configuration',
    });
    await expect(t.d.routeExec(650, { rule: 'nope' }, end(650))).rejects.toMatchObject({
      kind: 'invalid-config',
      message:
        'awg exec --rule nope: no enabled rule named "nope" (rules: mail, tools, telemetry) in the applied configuration',
    });

    // the rules alone: curl and git go direct (tools), the telemetry agent is blocked
    expect(await t.appConnect(601, 'curl-rules')).toBe('dst:curl-rules');
    expect(t.pinned.at(-1)).toBe('en0/4');
    const off = await t.d.routeExec(650, { tunnel: 'home' }, end(650));
    expect(await t.appConnect(601, 'curl-exec')).toBe('dst:curl-exec');
    expect(t.pinned.at(-1)).toBe('utun0/4');
    expect(await t.appConnect(605, 'git-exec')).toBe('dst:git-exec');
    expect(t.pinned.at(-1)).toBe('utun0/4');
    expect(await t.appConnect(606, 'git-daemon')).toBe('dst:git-daemon'); // re-parented to launchd: the rules
    expect(t.pinned.at(-1)).toBe('en0/4');
    await expect(t.d.routeExec(650, { direct: true }, end(650))).rejects.toMatchObject({
      kind: 'conflict',
    });
    const offDirect = await t.d.routeExec(651, { direct: true }, end(651));
    expect(await t.appConnect(602, 'beacon')).toBe('dst:beacon');
    expect(t.pinned.at(-1)).toBe('en0/4');
    // awg processes: the registered trees as Linux lists exec cgroups (awg itself, root, is not routed per app)
    expect((await t.d.status()).placement?.reason).toMatch(/; awg exec registrations: 2$/);
    const listed = async () =>
      (await t.d.listProcesses()).map((p) => `${p.pid} ${p.rule ?? '-'} ${p.route}`);
    expect(await listed()).toEqual([
      '530 mail home',
      '601 exec:home home',
      '602 exec:direct direct',
      '605 exec:home home',
      '606 tools direct',
    ]);
    off();
    expect(await listed()).toEqual([
      '530 mail home',
      '601 tools direct',
      '602 exec:direct direct',
      '605 tools direct',
      '606 tools direct',
    ]);
    expect(await t.appConnect(601, 'curl-after')).toBe('dst:curl-after');
    expect(t.pinned.at(-1)).toBe('en0/4');
    // the rules count what they decided; flows of --tunnel and --direct belong to no rule (Linux: _exec-* cgroups)
    expect((await t.d.status()).rules?.map((r) => `${r.name} ${r.connections}`)).toEqual([
      'mail 0',
      'tools 3',
      'telemetry 0',
    ]);
    expect(ends).toEqual([]);
    expect((await t.d.status()).placement?.reason).toMatch(/; awg exec registrations: 1$/);

    // the rules go: the router closes, and with it the registration that is left
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(ends).toEqual([
      '651: the flow router stopped (awg down, the daemon stopping, or a config without per-app rules): the choice of awg exec can no longer be kept',
    ]);
    offDirect();
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it("awg exec on the model end to end: the CLI registers through the API (its pid from LOCAL_PEERPID) before it runs the command, which routes its children; the command's exit ends it; a config without per-app rules stops the command with the reason", async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    const mac = macCallers();
    mac.state.who = { uid: 0, groups: [0], pid: 650 }; // awg exec, as root, the parent of curl (601)
    const socket = join(t.dir, 'awg.sock');
    const server = await startApiServer(t.d, { socketPath: socket, callers: mac.callers });
    cleanups.push(() => server.close());
    const cli = capturingCli();
    const go = join(t.dir, 'go');
    // the command waits until the test has seen curl routed by the registration
    const wait = ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.02; done`];
    const deps = { platform: darwinPlatform, euid: 501, env: {} };
    const run = cli.run(() => execCommand(cli.io, wait, { tunnel: 'home', socket }, deps));
    await expect
      .poll(
        async () =>
          (await t.appConnect(601, 'curl')) === 'dst:curl' && t.pinned.at(-1) === 'utun0/4',
      )
      .toBe(true);
    writeFileSync(go, '');
    expect(await run).toEqual({ code: 0, out: '' });
    await expect
      .poll(
        async () => (await t.appConnect(601, 'curl-after')) === 'dst:curl-after' && t.pinned.at(-1),
      )
      .toBe('en0/4');
    rmSync(go);

    // the rules leave the config while a command runs: the router stops; awg exec says why, stops the command, exits 6 (driver)
    const run2 = cli.run(() =>
      execCommand(cli.io, ['sleep', '30'], { tunnel: 'home', socket }, deps),
    );
    await expect
      .poll(async () => (await t.appConnect(601, 'curl2')) === 'dst:curl2' && t.pinned.at(-1))
      .toBe('utun0/4');
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(await run2).toEqual({
      code: 6,
      out: 'awg exec: the flow router stopped (awg down, the daemon stopping, or a config without per-app rules): the choice of awg exec can no longer be kept; stopping sleep: its new connections would no longer follow --tunnel home\n',
    });
    await server.close();
    await t.d.down();
    await t.d.stop();
  });
});
