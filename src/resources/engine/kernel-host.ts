/**
 * Engine driver for `engine: kernel`: Linux's WireGuard module serves the tunnel's
 * `wireguard` link (made by the link driver), configured over generic netlink
 * (native/wg-kernel.ts) with the same DeviceChange our UAPI engines get (uapi-config.ts).
 * There is no process: the device lives as long as its link.
 *
 * - observe: each kernel engine recorded in the state store (`engine-<tunnel>`, spec with
 *   `engine: 'kernel'`) whose link answers WG_CMD_GET_DEVICE, corrected by what the device
 *   holds (live-spec.ts: another private key, extra peers or allowed IPs are drift);
 * - create/replace: the full configuration (REPLACE_PEERS), then the record;
 * - update: the delta (sessions of unchanged peers are kept);
 * - delete: the device is emptied (no key, no peers, port and mark 0) if its link is still
 *   there, and the record is forgotten.
 * Host-name endpoints are resolved here (the kernel takes addresses only), through the
 * resolver of endpoints.ts that the daemon and the firewall use.
 */
import { AwgError, toAwgError } from '../../errors.js';
import { fingerprint } from '../../config/fingerprint.js';
import { fingerprintKeyOf } from '../../util/host-key.js';
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import { isProxyEngine, type Resource, type WgEngineSpec } from '../../model/resources.js';
import type { WgDevice, WgDeviceSet, WgPeerSet } from '../../native/wgnl.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import { endpointResolverFor, engineResolver } from '../endpoints.js';
import { liveWgSpec } from './live-spec.js';
import { engineKey, engineRecords, secretsFor, type EngineRecord } from './process-host.js';
import { deltaSet, fullSet, type DeviceChange } from './uapi-config.js';

/** The generic netlink calls this driver makes (native/wg-kernel.ts; tests pass fakes). */
export interface KernelNatives {
  getDevice(ifname: string): WgDevice;
  setDevice(set: WgDeviceSet): void;
}

export interface KernelHostOptions {
  /** network namespace of the links (default: this process's) */
  netns?: string;
  natives?: KernelNatives;
}

const stateKey = engineKey;
const b64 = (b: Buffer) => b.toString('base64');
const bytes = (s: string) => Buffer.from(s, 'base64');
const ZERO = Buffer.alloc(32);

async function loadNatives(netns?: string): Promise<KernelNatives> {
  const k = await import('../../native/wg-kernel.js');
  const o = netns ? { netns } : {};
  return { getDevice: (n) => k.wgGetDevice(n, o), setDevice: (s) => k.wgSetDevice(s, o) };
}

/** `host:port` → an address the kernel takes: literal as is, a name through the resolver. */
async function endpointOf(
  endpoint: string,
  fwmark: number,
  ctx: ApplyContext,
): Promise<{ address: string; port: number }> {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new AwgError('invalid-config', `endpoint ${endpoint} is not host:port`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (m[1] !== undefined || /^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return { address: host, port };
  const [address] = await engineResolver(endpointResolverFor(ctx.state)).resolve(host, {
    mark: fwmark,
  });
  if (!address) throw new AwgError('driver', `endpoint ${host} did not resolve`);
  return { address, port };
}

/** A DeviceChange as WG_CMD_SET_DEVICE (keys as bytes, endpoints as addresses). */
export async function kernelSet(
  link: string,
  c: DeviceChange,
  fwmark: number,
  ctx: ApplyContext,
): Promise<WgDeviceSet> {
  const peers: WgPeerSet[] = [];
  for (const p of c.peers) {
    if (p.remove) {
      peers.push({ publicKey: bytes(p.publicKey), remove: true });
      continue;
    }
    // Linux's module keeps one interval (a u16): a range is refused, never narrowed to one
    // value (config/semantic-keepalive.ts says so first, at the config's line)
    if (typeof p.persistentKeepalive !== 'number')
      throw new AwgError(
        'unsupported',
        `${link}: Linux's WireGuard module keeps one keepalive interval, but peer ${p.publicKey} has the range ${p.persistentKeepalive} (AmneziaWG 3.x); use engine: embedded or amneziawg-go 3.x`,
      );
    peers.push({
      publicKey: bytes(p.publicKey),
      replaceAllowedIps: true,
      presharedKey: p.presharedKey ? bytes(p.presharedKey) : ZERO,
      ...(p.endpoint ? { endpoint: await endpointOf(p.endpoint, fwmark, ctx) } : {}),
      persistentKeepalive: p.persistentKeepalive,
      allowedIps: p.allowedIPs,
    });
  }
  return {
    ifname: link,
    ...(c.privateKey !== undefined ? { privateKey: bytes(c.privateKey) } : {}),
    ...(c.listenPort !== undefined ? { listenPort: c.listenPort } : {}),
    ...(c.fwmark !== undefined ? { fwmark: c.fwmark } : {}),
    replacePeers: c.replacePeers,
    peers,
  };
}

export function createKernelEngineDriver(opts: KernelHostOptions = {}): Driver<'engine'> {
  let natives: Promise<KernelNatives> | undefined = opts.natives
    ? Promise.resolve(opts.natives)
    : undefined;
  const native = () => (natives ??= loadNatives(opts.netns));

  const records = (state: ObserveScope['state']) =>
    engineRecords(state, 'kernel') as (EngineRecord & { spec: WgEngineSpec })[];

  async function live(
    spec: WgEngineSpec,
    key: () => Uint8Array,
  ): Promise<WgEngineSpec | undefined> {
    let dev: WgDevice;
    try {
      dev = (await native()).getDevice(spec.link);
    } catch {
      return undefined; // no link, or not a wireguard one: the plan makes it again
    }
    return liveWgSpec(spec, {
      privateKey: dev.privateKey ? fingerprint(b64(dev.privateKey), key()) : 'none',
      fwmark: dev.fwmark,
      peers: dev.peers.map((p) => ({
        publicKey: b64(p.publicKey),
        allowedIPs: p.allowedIps,
        endpoint: p.endpoint ?? null,
        persistentKeepalive: p.persistentKeepalive,
      })),
    });
  }

  async function send(spec: WgEngineSpec, c: DeviceChange, ctx: ApplyContext): Promise<void> {
    const set = await kernelSet(spec.link, c, spec.config.fwmark, ctx);
    try {
      (await native()).setDevice(set);
    } catch (e) {
      throw toAwgError(e, 'driver');
    }
  }

  function remember(spec: WgEngineSpec, ctx: ApplyContext): void {
    ctx.state.set<EngineRecord>(stateKey(spec.tunnel), {
      tunnel: spec.tunnel,
      link: spec.link,
      pid: 0,
      uapiPath: '',
      spec,
    });
  }

  async function empty(rec: EngineRecord & { spec: WgEngineSpec }, ctx: ApplyContext) {
    if (
      !ctx.exec.record(
        `[genetlink] wg set ${rec.link}: no key, no peers (engine ${rec.tunnel} removed)`,
      )
    )
      return;
    try {
      (await native()).setDevice({
        ifname: rec.link,
        privateKey: ZERO,
        listenPort: 0,
        fwmark: 0,
        replacePeers: true,
        peers: [],
      });
    } catch {
      /* the link is gone (or no longer wireguard): nothing is left to empty */
    }
    ctx.state.delete(stateKey(rec.tunnel));
  }

  return {
    kind: 'engine',
    async observe(scope: ObserveScope): Promise<ObserveResult<'engine'>> {
      const resources: Resource<'engine'>[] = [];
      for (const rec of records(scope.state)) {
        const spec = await live(rec.spec, () => fingerprintKeyOf(scope.state));
        if (spec) resources.push({ kind: 'engine', id: ids.engine(rec.tunnel), spec, deps: [] });
      }
      return { resources, foreign: [] };
    },
    async apply(change: Change<'engine'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const spec = (change.after ?? change.before)!;
      if (isProxyEngine(spec)) throw new AwgError('bug', `kernel engine for proxy ${spec.tunnel}`);
      const rec = records(ctx.state).find((r) => r.tunnel === spec.tunnel);
      if (change.action === 'delete') {
        if (!rec) return 'unchanged';
        await empty(rec, ctx);
        return 'changed';
      }
      const after = change.after as WgEngineSpec;
      const secrets = secretsFor(after.tunnel, after, ctx.secrets);
      const before = change.before as WgEngineSpec | undefined;
      if (change.action === 'update' && before && rec) {
        if (
          !ctx.exec.record(
            `[genetlink] wg set ${after.link} (${change.fields?.join(', ') ?? 'config'})`,
          )
        )
          return 'changed';
        await send(after, deltaSet(before, after, secrets), ctx);
      } else {
        if (
          !ctx.exec.record(
            `[genetlink] wg setconf ${after.link} (engine ${after.tunnel} in the kernel)`,
          )
        )
          return 'changed';
        await send(after, fullSet(after, secrets), ctx);
      }
      remember(after, ctx);
      return 'changed';
    },
  };
}
