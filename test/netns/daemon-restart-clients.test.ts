/**
 * Clients that survive a daemon restart, with a real `awg daemon` in a namespace: under a
 * running `awg events --json` and `awg status --watch` the daemon is killed (SIGKILL: no
 * goodbye, a stale socket left behind) and started again on the same socket. Both clients
 * say the service went away and came back, keep running, and follow the new daemon: events
 * of a reconcile after the restart arrive, the status is read again.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { clientConfig, eventually, newKeys } from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft']);

describe.skipIf(skip)('awg events and status --watch across a killed and restarted daemon', () => {
  let ns: string | undefined;
  let e: AwgEnv;
  let socket: string;
  let cfg: string;
  const procs: NsProcess[] = [];

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('restart');
    e = makeAwgEnv();
    // a tunnel whose peer never answers: the daemon still converges what it owns
    cfg = writeConfig(e, 'client.yaml', clientConfig(newKeys(), { endpoint: '192.0.2.1' }));
    socket = join(e.dir, 'run', 'awg.sock');
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) await p.kill(5000);
    if (ns) await awg(ns, e, ['down', '--direct']).catch(() => undefined);
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
  });

  const spawn = (args: string[]) => {
    const argv = awgArgv(ns!, e, args, { noStateDir: true });
    const p = nsSpawn(ns!, argv[3]!, argv.slice(4), { env: e.env });
    procs.push(p);
    return p;
  };
  const startDaemon = () =>
    spawn(['daemon', '--config', cfg, '--state-dir', e.stateDir, '--socket', socket]);
  const cli = (args: string[]) => awg(ns!, e, [...args, '--socket', socket], { noStateDir: true });
  /** the JSON lines `awg events --json` printed */
  const records = (p: NsProcess) =>
    p
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; state?: string; reason?: string });

  it('both keep running, say unavailable then available, and follow the new daemon', async () => {
    let daemon = startDaemon();
    await eventually(
      async () => (await cli(['status', '--json'])).code === 0,
      'the daemon reports converged through the API',
      60_000,
    );
    const events = spawn(['events', '--json', '--socket', socket]);
    const watch = spawn(['status', '--watch', '--socket', socket]);
    await eventually(async () => {
      if (records(events).some((r) => r.type === 'reconcile-finished')) return true;
      expect((await cli(['apply', '-f', cfg])).code).toBe(0);
      return false;
    }, 'awg events follows the first daemon');
    await eventually(async () => watch.output().includes('state: converged'), 'status --watch');

    daemon.child.kill('SIGKILL');
    await daemon.exited;
    await eventually(
      async () => records(events).some((r) => r.type === 'service' && r.state === 'unavailable'),
      'awg events says the service is unavailable',
    );
    await eventually(
      async () => watch.output().includes('service unavailable'),
      'status --watch says the service is unavailable',
    );
    // a while away: the clients keep trying (their backoff), they do not exit
    expect(events.child.exitCode).toBeNull();
    expect(watch.child.exitCode).toBeNull();

    daemon = startDaemon();
    await eventually(
      async () => records(events).some((r) => r.type === 'service' && r.state === 'available'),
      'awg events says the service is available again',
      60_000,
    );
    await eventually(
      async () => watch.output().includes('service available again'),
      'status --watch says the service is available again',
    );
    const back = records(events).findIndex((r) => r.type === 'service' && r.state === 'available');
    await eventually(async () => {
      if (
        records(events)
          .slice(back)
          .some((r) => r.type === 'reconcile-finished')
      )
        return true;
      const a = await cli(['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);
      return false;
    }, 'awg events follows the new daemon');
    // the view printed again, from the new daemon
    await eventually(async () => {
      const out = watch.output();
      return /^state: /m.test(out.slice(out.indexOf('service available again')));
    }, 'status --watch read the status of the new daemon');

    events.child.kill('SIGTERM');
    watch.child.kill('SIGTERM');
    expect(await events.exited).toBe(0);
    expect(await watch.exited).toBe(0);
    const kinds = records(events).map((r) =>
      r.type === 'service' ? `service ${r.state}` : r.type,
    );
    expect(kinds.filter((k) => k.startsWith('service'))).toEqual([
      'service unavailable',
      'service available',
    ]);
  }, 120_000);
});
