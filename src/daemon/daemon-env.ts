/**
 * What the daemon reconciles with: this host's platform and its drivers (loaded once; the
 * engine driver is the in-process engine host's), the state directory and the applied record
 * in it, the Exec and the reporter. From them: the reconcile environment for a config's
 * claims and secrets, and the claims of what the daemon manages.
 */
import type { ReconcileEnv } from '../reconciler/observe.js';
import { AppliedStore } from '../pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../pipeline/claims.js';
import { stateDirFrom } from '../pipeline/host.js';
import type { Claims, Driver, DriverSet } from '../resources/driver.js';
import { loadPlatform, type Platform } from '../resources/registry.js';
import { ProcessExec, type Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import { describeCorrupt, FileStateStore, type StateStore } from '../util/state.js';
import type { DaemonOptions } from './options.js';

/** the daemon's options this part reads (tests inject platform, drivers, exec and state) */
export interface DaemonEnvOptions extends Pick<
  DaemonOptions,
  'stateDir' | 'env' | 'platform' | 'drivers' | 'exec' | 'state'
> {
  reporter: Reporter;
  /** the engine driver: the in-process engine host's unless `drivers` has one */
  engineDriver: () => Driver<'engine'>;
  /** the claims of the config followed; undefined: none */
  current: () => Claims | undefined;
  /** an unusable record in the state directory (moved aside, logged): tell the subscribers */
  onCorrupt: (message: string) => void;
}

export class DaemonEnv {
  readonly reporter: Reporter;
  readonly state: StateStore;
  readonly applied: AppliedStore;
  readonly exec: Exec;
  private loaded: Platform | undefined;
  private drivers: Partial<DriverSet> = {};
  private init: Promise<void> | undefined;

  constructor(private readonly o: DaemonEnvOptions) {
    this.reporter = o.reporter;
    // an unusable record is moved aside, logged and reported as an error event; the daemon
    // keeps running (a crash here would restart forever under systemd, kill switch closed)
    this.state =
      o.state ??
      new FileStateStore(stateDirFrom(o.stateDir, o.env), {
        onCorrupt: (c) => {
          o.reporter.report({ type: 'warning', message: describeCorrupt(c) });
          o.onCorrupt(describeCorrupt(c));
        },
      });
    this.applied = new AppliedStore(this.state);
    this.exec = o.exec ?? new ProcessExec(o.reporter, false);
  }

  /** this host's platform, once ready() resolved */
  get platform(): Platform | undefined {
    return this.loaded;
  }

  /** Load the platform and its drivers, once. */
  ready(): Promise<void> {
    this.init ??= (async () => {
      this.loaded = this.o.platform ?? (await loadPlatform());
      const drivers =
        this.o.drivers ??
        (await this.loaded.drivers({
          exec: this.exec,
          ...(this.o.env ? { env: this.o.env } : {}),
        }));
      this.drivers = { ...drivers, engine: this.o.drivers?.engine ?? this.o.engineDriver() };
    })();
    return this.init;
  }

  /** the reconcile environment for a config's claims and secrets (a teardown: claims alone) */
  envFor(p: { claims: Claims; secrets?: ReadonlyMap<string, string> }): ReconcileEnv {
    return {
      drivers: this.drivers,
      claims: p.claims,
      state: this.state,
      exec: this.exec,
      reporter: this.reporter,
      secrets: p.secrets,
    };
  }

  /** the claims of what we manage: the current config's, else the last apply's, else the defaults */
  claims(): Claims {
    return this.o.current() ?? this.applied.claims() ?? DEFAULT_CLAIMS;
  }
}
