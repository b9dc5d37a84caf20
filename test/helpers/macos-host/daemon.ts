/**
 * The real Daemon on the macOS host model, as the model tests run it: no wake sources (the
 * tests wake it), no placer, no drift timer, a long backoff, no health or traffic timers;
 * `o` adds or overrides (its config, platform, drivers or engines, state). `macCallers`: the
 * API's caller check as macOS makes it, on fake system calls.
 */
import { Daemon, type DaemonOptions } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import {
  LOCAL_PEERCRED,
  LOCAL_PEERPID,
  SOL_LOCAL,
  darwinCallerNatives,
} from '../../../src/native/darwin/peercred.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { pidT, xucred } from '../xucred-bytes.js';
import { modelEngineIo } from './engine.js';
import type { MacHost } from './model.js';
import type { Io } from '../../../src/cli/output.js';

export function modelDaemon(o: DaemonOptions) {
  const d = new Daemon({
    wakes: false,
    placement: false,
    loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    healthIntervalMs: 0,
    trafficIntervalMs: 0,
    ...o,
  });
  const events: DaemonEvent[] = [];
  d.subscribe((e) => events.push(e));
  /**
   * the `n`th reconcile-finished event, once it came. No deadline of its own (it gave up after
   * 5,000 tries, about 10 s, which a loaded machine's first run, its modules loaded lazily,
   * could outlast); the test's timeout bounds the wait.
   */
  const finished = async (n: number) => {
    while (events.filter((e) => e.type === 'reconcile-finished').length < n)
      await new Promise((r) => setTimeout(r, 2));
    return events.filter((e) => e.type === 'reconcile-finished')[n - 1];
  };
  return { d, events, finished };
}

/**
 * macOS's caller check on fake system calls: LOCAL_PEERCRED answers the xucred of `who`
 * (root until a test changes it), LOCAL_PEERPID its pid; no path has an extended ACL. Every
 * call is recorded: the accepted socket's fd, level and option.
 */
export function macCallers() {
  const calls: { fd: number; level: number; name: number }[] = [];
  const acls: string[] = [];
  const state = { who: { uid: 0, groups: [0, 1, 2], pid: 1 } };
  const callers = darwinCallerNatives({
    getsockopt(fd, level, name, val) {
      calls.push({ fd, level, name });
      const b =
        level !== SOL_LOCAL
          ? undefined
          : name === LOCAL_PEERCRED
            ? xucred(state.who.uid, state.who.groups)
            : name === LOCAL_PEERPID
              ? pidT(state.who.pid)
              : undefined;
      if (!b) return -22;
      val.set(b);
      return b.length;
    },
    aclExternal(path) {
      acls.push(path);
      return null;
    },
  });
  return { callers, calls, acls, state };
}

/**
 * The daemon as a Mac runs it, on the model: the darwin platform, its in-process engine host
 * on utuns of the model, its own FileStateStore in `stateDir` (which reports unusable
 * records), serving the API on a fresh socket in `dir` with macOS's caller check (root
 * calling). `stop`: the API closes and the daemon stops without teardown.
 */
export async function servingModelDaemon(
  host: MacHost,
  o: { dir: string; stateDir: string; configPath?: string },
) {
  const { io } = await modelEngineIo(host);
  const m = modelDaemon({
    platform: darwinPlatform,
    exec: host,
    stateDir: o.stateDir,
    engines: createInprocEngineHost({ io, uapi: false }),
    ...(o.configPath ? { configPath: o.configPath } : {}),
  });
  await m.d.start();
  const socket = `${o.dir}/awg-${Math.random().toString(36).slice(2)}.sock`;
  const server = await startApiServer(m.d, { socketPath: socket, callers: macCallers().callers });
  const stop = async () => {
    await server.close();
    await m.d.stop({ teardown: false });
  };
  return { ...m, socket, stop };
}

/** An Io that keeps what a command prints (stdout and stderr together); `run` returns its exit code and that text. */
export function capturingCli() {
  let out = '';
  const io: Io = { out: (x) => (out += x), err: (x) => (out += x), colour: false };
  const run = async (f: () => Promise<number>) => {
    out = '';
    const code = await f();
    return { code, out };
  };
  return { io, run };
}
