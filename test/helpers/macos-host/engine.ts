/**
 * The model's tunnel engine (a stand-in for `awg engine` on macOS): starting one opens a utun
 * in the model host and records `link → utunN` in the state store, as the real engine does
 * (platform/darwin/utun.ts recordUtun); stopping it closes the utun, and the kernel removes
 * the interface and every route through it. `kill` is a crash: the utun goes, the record stays.
 */
import type { Socket } from 'node:dgram';
import { AwgError } from '../../../src/errors.js';
import { utunEngineIo, type UtunNatives } from '../../../src/dataplane/engine.js';
import type { UtunIo } from '../../../src/native/darwin/utun-io.js';
import type { Change } from '../../../src/model/change.js';
import { ids } from '../../../src/model/identity.js';
import { isProxyEngine, type EngineSpec, type Resource } from '../../../src/model/resources.js';
import { forgetUtun, readUtunRegistry, recordUtun } from '../../../src/platform/darwin/utun.js';
import type {
  ApplyContext,
  ApplyResult,
  Driver,
  ObserveResult,
  ObserveScope,
} from '../../../src/resources/driver.js';
import type { MacHost } from './model.js';

export class ModelEngines implements Driver<'engine'> {
  readonly kind = 'engine' as const;
  /** running engines: tunnel → spec and the utun they hold */
  readonly running = new Map<string, { spec: EngineSpec; utun?: string }>();
  starts = 0;
  /** the next N starts fail (the utun cannot be opened) */
  failStarts = 0;

  constructor(private readonly host: MacHost) {}

  async observe(_scope: ObserveScope): Promise<ObserveResult<'engine'>> {
    const resources: Resource<'engine'>[] = [];
    for (const [tunnel, e] of this.running)
      if (!e.utun || this.host.interfaces.has(e.utun))
        resources.push({ kind: 'engine', id: ids.engine(tunnel), spec: e.spec, deps: [] });
    return { resources, foreign: [] };
  }

  async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
    if (change.action === 'noop') return 'unchanged';
    if (change.before && (change.action === 'delete' || change.action === 'replace'))
      this.stop(change.before, ctx);
    if (change.after && change.action !== 'delete') {
      const spec = change.after;
      const cur = this.running.get(spec.tunnel);
      if (cur && (!cur.utun || this.host.interfaces.has(cur.utun))) cur.spec = spec;
      else {
        this.starts++;
        const e: { spec: EngineSpec; utun?: string } = { spec };
        if (!isProxyEngine(spec)) {
          // the utun control socket is privileged (connect: EPERM for non-root)
          if (this.host.root === false)
            throw new AwgError(
              'permission',
              `engine ${spec.tunnel}: connect(com.apple.net.utun_control): Operation not permitted`,
            );
          if (this.failStarts > 0) {
            this.failStarts--;
            throw new AwgError(
              'driver',
              `engine ${spec.tunnel}: connect(com.apple.net.utun_control): Device busy`,
            );
          }
          e.utun = this.host.createUtun();
          recordUtun(ctx.state, spec.link, { ifname: e.utun, pid: 40000 + this.starts });
        }
        this.running.set(spec.tunnel, e);
      }
    }
    return 'changed';
  }

  private stop(spec: EngineSpec, ctx: ApplyContext): void {
    const e = this.running.get(spec.tunnel);
    if (e?.utun) this.host.destroyUtun(e.utun);
    this.running.delete(spec.tunnel);
    if (!isProxyEngine(spec) && readUtunRegistry(ctx.state)[spec.link])
      forgetUtun(ctx.state, spec.link);
  }

  /** the engine process died (the daemon crashed): its utun and routes go, nothing else */
  kill(tunnel: string): void {
    const e = this.running.get(tunnel);
    if (e?.utun) this.host.destroyUtun(e.utun);
    this.running.delete(tunnel);
  }
}

/**
 * The system calls of the daemon's real engine io (dataplane/engine.ts utunEngineIo) on the
 * model: each engine opens a utun of the model (its UtunIo carries no packets; closing it
 * removes the interface and its routes, as the kernel does), and the sockets'
 * IP(V6)_BOUND_IF calls are recorded instead of made (`failPinOn`: those interfaces refuse).
 */
export function modelNatives(
  host: MacHost,
  o: { failPinOn?: ReadonlySet<string> | undefined } = {},
) {
  const pins: { port: number; ifname: string; family: 4 | 6 }[] = [];
  const natives: UtunNatives = {
    pin: (sock: Socket, ifname, family) => {
      if (o.failPinOn?.has(ifname)) throw new Error(`no interface ${ifname}`);
      pins.push({ port: sock.address().port, ifname, family });
    },
    openUtunIo: () => {
      const ifname = host.createUtun();
      const io: UtunIo = {
        read: () => 0,
        write: () => true,
        mtu: () => 1420,
        watch: () => () => {},
        close: () => host.destroyUtun(ifname),
      };
      return { ifname, io };
    },
  };
  return { natives, pins };
}

/** utunEngineIo over modelNatives: the WireGuard devices and UDP sockets are real */
export async function modelEngineIo(host: MacHost, o: { failPinOn?: ReadonlySet<string> } = {}) {
  const { natives, pins } = modelNatives(host, o);
  return { io: await utunEngineIo({ natives }), pins, natives };
}
