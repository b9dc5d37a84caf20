/**
 * One engine as `awg engine` and the daemon host it (what wireguard-go's main.go assembles):
 * a Device attached to the TUN `link` with a UDP bind, configured with UAPI `set=1` text and
 * served on a UAPI socket so `wg show` / `wg set` reach it.
 *
 * `createEngine` builds the device down and unconfigured, so the caller can subscribe to its
 * events first (`start` already emits `endpoint` while it resolves hostname endpoints).
 */
import type { AwgError } from '../errors.js';
import type { Bind } from './conn/bind.js';
import { InterfacePin, type PinNatives, type Underlay } from './conn/pin.js';
import { Device, type DeviceOptions } from './device/device.js';
import type { Resolver } from './device/resolver.js';
import { listenUapi, type UapiServer } from './ipc/server.js';
import type { TunDevice } from './tun/tun.js';
import type { UtunIo } from '../native/darwin/utun-io.js';
import { warmUpHandshakes } from './warmup.js';
import { applyEngineSlice, applyEngineWeight, sharedBoost } from './boost.js';
import { errnoText } from '../native/sched.js';

/** A TUN whose link can be deleted under the engine (TunFile; tests use fakes). */
export interface EngineTun extends TunDevice {
  /** reading failed for good (the link was deleted); delivery has stopped */
  onError?(cb: (e: AwgError) => void): void;
  /** TUNGETIFF flags; throws once the link is gone */
  flags?(): number;
}

/** What an engine is built from; tests inject in-memory TUN and bind fakes. */
export interface EngineIo {
  openTun(link: string): EngineTun;
  bind(): Bind;
  /**
   * The physical network changed (or is first known): where the binds' sockets must leave
   * (macOS: pinned with IP_BOUND_IF, conn/pin.ts). Absent where marks do that (Linux).
   */
  setUnderlay?(u: Underlay): void;
}

/**
 * The TUN through /dev/net/tun and a UDP bind whose sockets carry the device's fwmark.
 * Loaded on first use: koffi and libc stay off paths that never start an engine.
 */
export async function nativeEngineIo(): Promise<EngineIo> {
  const [{ TunFile }, { UdpBind }, { NativeUdpBind }, { markDgram }, { nativeUdpAvailable }] =
    await Promise.all([
      import('./tun/file.js'),
      import('./conn/udp.js'),
      import('./conn/native-udp.js'),
      import('../native/sockmark.js'),
      import('../native/udpsock.js'),
    ]);
  // our own socket (recvmmsg, replies from the address reached) where the platform has it;
  // AWG_UDP_NATIVE=0 selects node:dgram (diagnosis)
  const native = nativeUdpAvailable() && process.env.AWG_UDP_NATIVE !== '0';
  return {
    openTun: (link) => TunFile.open(link),
    bind: () => (native ? new NativeUdpBind() : new UdpBind(undefined, markDgram)),
  };
}

export interface UtunNatives extends PinNatives {
  openUtunIo(): { ifname: string; io: UtunIo };
}

/**
 * macOS: a utun (the first free one; the engine reports which, and the host records it
 * against the link for the drivers) and a node:dgram bind whose sockets are pinned to the
 * physical interface (IP_BOUND_IF / IPV6_BOUND_IF) and re-pinned on `setUnderlay`, so the
 * default tunnel's 0/1 + 128/1 never pull the engines' own packets into a tunnel. NEVER RUN
 * ON A MAC; tests inject `natives` (the koffi bindings otherwise, loaded here).
 */
export async function utunEngineIo(
  o: { natives?: UtunNatives; log?: (message: string) => void } = {},
): Promise<EngineIo & { pin: InterfacePin }> {
  const [{ UtunDevice }, { UdpBind }] = await Promise.all([
    import('./tun/utun.js'),
    import('./conn/udp.js'),
  ]);
  const natives = o.natives ?? (await darwinUtunNatives());
  const pin = new InterfacePin(natives, o.log);
  return {
    pin,
    openTun: () => {
      const { ifname, io } = natives.openUtunIo();
      return new UtunDevice(ifname, io);
    },
    bind: () => new UdpBind(undefined, undefined, { pin }),
    setUnderlay: (u) => pin.setUnderlay(u),
  };
}

async function darwinUtunNatives(): Promise<UtunNatives> {
  const [{ openUtunIo }, { bindToInterface }] = await Promise.all([
    import('../native/darwin/utun-io.js'),
    import('../native/darwin/bound-if.js'),
  ]);
  return {
    openUtunIo: () => openUtunIo(),
    pin: (sock, ifname, family) => bindToInterface(sock, ifname, family),
  };
}

export interface EngineOptions {
  log?: DeviceOptions['log'];
  /** host names of peer endpoints → addresses (default: the system resolver) */
  resolver?: Resolver;
}

export class Engine {
  private server: UapiServer | undefined;

  constructor(
    readonly device: Device,
    readonly tun: EngineTun,
  ) {}

  /** the UAPI socket, once `start` listens on one */
  get uapi(): UapiServer | undefined {
    return this.server;
  }

  /**
   * Applies the full configuration (UAPI `set=1` text), brings the device up and, with
   * `uapiPath`, listens there. On failure the device and its TUN are closed and the error
   * (UapiError, AwgError('driver'|'conflict'), …) is rethrown.
   */
  async start(config: string, opts: { uapiPath?: string } = {}): Promise<void> {
    try {
      await this.device.ipcSet(config);
      await this.device.up();
      if (opts.uapiPath !== undefined) this.server = await listenUapi(this.device, opts.uapiPath);
      // compile the handshake path before a real peer needs it (warmup.ts)
      if (process.env.AWG_WARMUP !== '0') {
        const t = setTimeout(() => void warmUpHandshakes(30, this.device.awg), 50);
        t.unref();
      }
    } catch (e) {
      await this.device.close().catch(() => {});
      throw e;
    }
  }

  /** Called once if the TUN fails for good (its link was deleted); the engine stays until closed. */
  onTunError(cb: (e: AwgError) => void): void {
    this.tun.onError?.(cb);
  }

  /** The device is up and its TUN still attached to a link (TUNGETIFF fails once it is deleted). */
  attached(): boolean {
    if (this.device.state !== 'up') return false;
    try {
      this.tun.flags?.();
      return true;
    } catch {
      return false;
    }
  }

  /** Stops listening and closes the device and its TUN (the persistent link stays). */
  async close(): Promise<void> {
    await this.server?.close().catch(() => {});
    this.server = undefined;
    await this.device.close().catch(() => {});
  }
}

/** Opens the TUN `link` and builds a device on it (down, unconfigured). */
export function createEngine(link: string, io: EngineIo, opts: EngineOptions = {}): Engine {
  const slice = applyEngineSlice();
  if (slice && slice.result < 0)
    opts.log?.(
      'info',
      `EEVDF slice of ${slice.us} µs refused (${slice.result}): the default slice`,
    );
  const said = (nice: number, result: number) =>
    opts.log?.(
      'info',
      result === 0
        ? `the engine's autogroup runs at nice ${nice} (AWG_ENGINE_NICE)`
        : `autogroup nice ${nice} refused (${errnoText(result)}): the session's default weight`,
    );
  const weight = applyEngineWeight(undefined, undefined, undefined, said);
  if ('result' in weight && !weight.retrying) said(weight.nice, weight.result);
  const tun = io.openTun(link);
  try {
    return new Engine(
      new Device({
        tun,
        bind: io.bind(),
        log: opts.log,
        boost: sharedBoost(),
        ...(opts.resolver ? { resolver: opts.resolver } : {}),
      }),
      tun,
    );
  } catch (e) {
    try {
      void Promise.resolve(tun.close()).catch(() => {});
    } catch {
      /* the device's error is the one to report */
    }
    throw e;
  }
}
