/** What a platform offers the pipeline and the daemon (chosen in ../registry.ts). Types, and two tables known without loading a platform. */
import type { Config } from '../../config/schema.js';
import type { EngineIo } from '../../dataplane/engine.js';
import type { CallerNatives } from '../../native/peercred.js';
import type { OwnerNatives } from '../../native/owner-lock.js';
import type { DesiredModel, HostFacts } from '../../model/desired.js';
import type { DesiredState } from '../../model/resources.js';
import type { Exec } from '../../util/exec.js';
import type { DriverSet } from '../driver.js';
import type {
  NetworkWatch,
  NetworkWatchOptions,
  SystemWatch,
  SystemWatchOptions,
} from '../monitor/types.js';
import type { ServiceManager } from '../service/manager.js';
import type { StateStore } from '../../util/state.js';
import type { RoutingFacts } from '../../model/unrouted.js';
import type { RoutingProbe } from '../facts.js';
import type { DoctorObservation } from '../../model/doctor.js';
import type { DoctorGatherOptions } from './linux-doctor.js';

/** How each platform routes per app (Platform.perApp), known without loading its drivers (registry.ts perAppOf). */
export const PER_APP = { linux: 'cgroup', darwin: 'flow-router' } as const satisfies Record<
  string,
  Platform['perApp']
>;

/**
 * Each platform's engine I/O (Platform.engineIo), reachable without loading its drivers
 * (registry.ts loadEngineIo): the Linux TUN and UDP bindings, macOS's utun.
 */
export const ENGINE_IO = {
  linux: async () => (await import('../../dataplane/engine.js')).nativeEngineIo(),
  darwin: async (o) =>
    (await import('../../dataplane/engine.js')).utunEngineIo(o?.log ? { log: o.log } : {}),
} as const satisfies Record<string, Platform['engineIo']>;

export interface DriverOptions {
  exec: Exec;
  env?: NodeJS.ProcessEnv;
}

export interface ProbeOptions extends DriverOptions {
  /** the state directory: last good answers for endpoint host names, the original resolv.conf */
  state?: StateStore;
  /** keep new endpoint answers there (apply, the daemon); `diff` only reads them */
  persistEndpoints?: boolean;
}

export interface Platform {
  readonly os: NodeJS.Platform;
  /** a driver per kind this platform manages (loaded on first use: `awg validate` needs none) */
  drivers(o: DriverOptions): Promise<Partial<DriverSet>>;
  /** host facts the model and `realise` depend on, probed for this config (cheap; before planning) */
  probeFacts(c: Config | undefined, o: ProbeOptions): Promise<HostFacts>;
  /**
   * The routing facts alone (model/unrouted.ts), for tunnels already applied (direct-mode
   * `awg status`); absent where they are not probed (macOS)
   */
  probeRouting?(exec: Pick<Exec, 'read'>, o: RoutingProbe): Promise<RoutingFacts>;
  /**
   * The desired model → this platform's resources: the firewall policy rendered in its own
   * language (nft, PF), and whatever else differs (macOS: one routing table, no cgroups).
   * Pure. Throws AwgError('invalid-config') when the policy cannot be expressed. `c`: the
   * config's rules and routing, for what the model does not carry (macOS: the flow router's
   * PF rules, resources/platform/darwin-flow.ts); without it path rules are dropped with a warning.
   */
  realise(m: DesiredModel, facts: HostFacts, c?: Pick<Config, 'rules' | 'routing'>): DesiredState;
  /** a wake source for the daemon: changes of links, addresses and routes (absent where none is built) */
  watchNetwork?(o: NetworkWatchOptions): Promise<NetworkWatch>;
  /** a wake source for the daemon: the system's services (Linux: resolved, NetworkManager, logind's resume on the system bus) */
  watchSystem?(o: SystemWatchOptions): Promise<SystemWatch>;
  /** where per-rule and per-tunnel traffic counters come from (Linux: our nft table's counters); absent: none are read */
  readonly trafficCounters?: 'nft';
  /** how this platform's engines reach a TUN and the network (Linux: /dev/net/tun; macOS: a utun); `log`: what the io reports (a pin that failed) */
  engineIo(o?: { log?: (message: string) => void }): Promise<EngineIo>;
  /**
   * What the daemon's API asks the kernel about a caller: its credentials on the accepted
   * socket and the ACLs the trust check reads (Linux: SO_PEERCRED and POSIX ACLs; macOS:
   * LOCAL_PEERCRED and extended ACLs). Rejects `unsupported` where there is none.
   */
  callerNatives(): Promise<CallerNatives>;
  /**
   * What the owner lock (../owner-lock.ts) asks the kernel: flock, and the scope one owner owns
   * (Linux: the network namespace; macOS: the host). Rejects `unsupported` where there is none.
   */
  ownerNatives(): Promise<OwnerNatives>;
  /** the manager that runs `awg daemon` as a system service (rejects `unsupported` where there is none) */
  serviceManager(): Promise<ServiceManager>;
  /**
   * How path rules reach processes, which decides process placement and ListProcesses
   * (procs/list.ts): 'cgroup' (Linux): the placer puts processes into rule cgroups
   * (daemon/placement.ts) and /proc lists them; 'flow-router' (macOS): no cgroups, the flow
   * router decides per TCP connection, nothing is placed, libproc lists them; 'none'.
   */
  readonly perApp: 'cgroup' | 'flow-router' | 'none';
  /**
   * Who can host tunnel engines: 'detached' — a one-shot `awg apply` starts `awg engine`
   * processes that outlive it (Linux: persistent TUNs, engines found again through /proc);
   * 'daemon' — only a long-running awg process (`awg daemon`, `awg up`) can (macOS: a utun
   * lives exactly as long as the socket of the process that opened it, and nothing finds a
   * detached engine again), so a one-shot apply of a config with tunnels is refused.
   */
  readonly engineHost: 'detached' | 'daemon';
  /** our links (`awg-<tunnel>`) that are up now, an engine holding them (direct-mode `awg processes`) */
  upLinks(o: { state: StateStore; exec: Pick<Exec, 'read'> }): Promise<Set<string>>;
  /** what `awg doctor` judges of this host (model/doctor.ts); absent: the platform has no doctor */
  observeConflicts?(o: DoctorGatherOptions): Promise<DoctorObservation>;
}
