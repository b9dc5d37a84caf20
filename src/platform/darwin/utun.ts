/**
 * The utun registry: which utun each logical link (`awg-work`) got. A utun has no
 * alias/description field, so the engine that created it records it in the StateStore
 * (`utunRegistryKey`) and the link, address, route and PF drivers resolve through it. The
 * interface lives exactly as long as the engine's control socket: `ifconfig utunN destroy`
 * fails (SIOCIFDESTROY: Invalid argument) and it vanishes when the engine exits. Pure.
 */
import type { StateStore } from '../../util/state.js';

// the kernel interface (constants, sockaddr_ctl, the AF header) is native/darwin/utun-abi.ts

/** StateStore record: logical link name (`awg-work`) → the utun the engine got. */
export interface UtunOwner {
  ifname: string;
  /** engine pid, for diagnostics */
  pid?: number;
}
export type UtunRegistry = Record<string, UtunOwner>;

export const utunRegistryKey = 'darwin-utun';

export function readUtunRegistry(state: StateStore): UtunRegistry {
  return state.get<UtunRegistry>(utunRegistryKey) ?? {};
}

/** Called by the engine after it created the device. */
export function recordUtun(state: StateStore, link: string, owner: UtunOwner): void {
  state.set(utunRegistryKey, { ...readUtunRegistry(state), [link]: owner });
}

export function forgetUtun(state: StateStore, link: string): void {
  const r = readUtunRegistry(state);
  delete r[link];
  state.set(utunRegistryKey, r);
}

/** Kernel interface for a logical link name; names that are already real interfaces pass through. */
export function resolveIfname(state: StateStore, link: string): string | undefined {
  if (/^(utun|en|bridge|lo|feth|ipsec|ppp)\d+$/.test(link)) return link;
  return readUtunRegistry(state)[link]?.ifname;
}
