/**
 * How a daemon core is made (DaemonOptions): what `awg daemon` and `awg up` pass, and what
 * tests inject in place of this host's platform, drivers, engines and processes.
 */
import type { RevisionWatchOptions } from './revision-watch.js';
import type { ListsHostOptions } from './lists-host.js';
import type { LearnedFact } from '../model/explain.js';
import type { ProcSubject } from '../procs/explain.js';
import type { HostSelection } from '../config/overlay.js';
import type { HostFacts } from '../model/desired.js';
import type { ProcessLister } from '../procs/list.js';
import type { TrafficSource } from '../procs/top/reading.js';
import type { PlacerProcessOptions } from '../procs/placer-process.js';
import type { DriverSet } from '../resources/driver.js';
import type { FlowRouterHostOptions } from '../resources/flow/flow-router-host.js';
import type { InprocEngineHost } from '../resources/engine/inproc.js';
import type { Platform } from '../resources/registry.js';
import type { Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';
import type { Timer } from './confirm.js';
import type { LimitSystem } from './limit-system.js';
import type { LoopInput } from './loop.js';
import type { RolloutGateOptions } from './rollout-gate.js';
import type { UpdateWatchOptions } from './update-watch.js';
import type { WakeSourceOptions } from './wakes.js';

/** what Explain asks of the DNS learner's book */
export interface LearnedBook {
  /** the entries for `addr` (any rule), their expiry on the clock of `now` */
  lookup(addr: string): readonly LearnedFact[];
  /** the addresses learned for `name` (what awg's resolver path gave the apps) */
  addressesOf?(name: string): readonly string[];
  /** ms, the clock of LearnedFact.expiresAt */
  now(): number;
}

export interface DaemonOptions {
  /** config file; default: the file of the last apply recorded in the state store */
  configPath?: string | undefined;
  stateDir?: string | undefined;
  /** mutation log (`[#] …`) and phases; events go to subscribers */
  reporter?: Reporter;
  loop?: LoopInput;
  /** config watcher, the platform's network monitor and system-service watch (default on) */
  wakes?:
    | Omit<
        WakeSourceOptions,
        'configPath' | 'onWake' | 'isEcho' | 'claims' | 'watchNetwork' | 'watchSystem'
      >
    | false;
  /** leave the host as `awg down` would on stop (default true; kill switch keeps the firewall) */
  teardownOnStop?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * whether the configured apt source offers a newer awg (update-watch.ts; default `local` on a
   * Debian install with awg's source, never otherwise); false: never
   */
  updates?: Omit<UpdateWatchOptions, 'exec'> | false;
  /** the host a config with overlays is rendered for (`--host`, `--labels`; default this machine) */
  selection?: HostSelection;
  /**
   * SSH allowed-signers file (`--allowed-signers`, as `awg sync`'s): a new revision's
   * `Awg-Rollout: immediate` trailer is honoured only on a commit that verifies against it
   */
  allowedSigners?: string | undefined;
  // ---- injection for tests
  /** the rollout gate's clock, timer and git reads (rollout-gate.ts) */
  rollout?: Pick<RolloutGateOptions, 'now' | 'timer' | 'readCommit' | 'verifyCommit'> | undefined;
  /** this host's platform unless given */
  platform?: Platform;
  drivers?: Partial<DriverSet>;
  engines?: InprocEngineHost;
  exec?: Exec;
  state?: StateStore;
  facts?: HostFacts;
  /** confirm-timeout timer; default setTimeout */
  timer?: Timer;
  /** the after-apply check's connect, timer and clock (revision-watch.ts) */
  verify?: Pick<RevisionWatchOptions, 'connect' | 'timer' | 'now'>;
  /**
   * The process watcher for path rules: an `awg placer` child at SCHED_FIFO, given
   * AWG_PROC_CONNECTOR_FD or a connector socket of our own (LISTEN works only from the
   * initial network namespace). false: no placement.
   */
  placement?:
    false | Pick<PlacerProcessOptions, 'connectorFd' | 'command' | 'priority'> | undefined;
  /** what runtime limits read and change (default: /proc and the cgroup v2 mount, limit-system.ts) */
  limitSystem?: LimitSystem;
  /**
   * Explain's learned book (the DNS learner, util/dns-learner.ts): the entries of an address,
   * and the addresses learned for a name. Default: nothing learned.
   */
  learned?: LearnedBook | undefined;
  /** Explain's /proc reads of a process (tests; default procs/explain.ts readSubject) */
  explainProc?: ((pid: number) => ProcSubject) | undefined;
  /** /proc/self/mountinfo's text for Explain (tests) */
  mountinfo?: (() => string) | undefined;
  /** lists by URL: the fetch of one list, the clock and the timers (tests; lists-host.ts) */
  lists?: Pick<ListsHostOptions, 'fetch' | 'now' | 'timer'> | undefined;
  /** ListProcesses' process table (default: the platform's, procs/list.ts) */
  processes?: ProcessLister;
  /** the traffic monitor's kernel reader (default: the platform's, procs/top/source.ts) */
  trafficSource?: () => TrafficSource;
  /** period of the `traffic` event while someone subscribes (default TRAFFIC_EVENT_MS; 0: none) */
  trafficIntervalMs?: number;
  /** health evaluation period (default 1000 ms; 0: only on engine events) */
  healthIntervalMs?: number;
  /** what the placer child prints that is not its protocol (its stderr): default our stderr */
  onPlacerLog?: (line: string) => void;
  /** the in-process engines' log (handshakes, proxy health, dial errors) */
  engineLog?: (level: 'debug' | 'info' | 'warn', message: string) => void;
  /** macOS flow router: its system calls (default: the koffi bindings) and subnet lookup (tests) */
  flowRouter?: Pick<FlowRouterHostOptions, 'natives' | 'subnets'>;
}
