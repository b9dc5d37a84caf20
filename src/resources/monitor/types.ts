/** The wake sources a platform offers the daemon: the network (`watchNetwork`) and the system's services (`watchSystem`). */

export interface NetworkWatchOptions {
  /**
   * called with a short description of the first change of a batch that matters; `firewall`:
   * only our nft table changed, `shaper`: only traffic control (no underlay change, so the
   * engines need no new handshake)
   */
  onChange(detail: string, what?: 'network' | 'firewall' | 'shaper'): void;
  /** true while our own changes may still echo back (they are ignored then) */
  isEcho(): boolean;
  /** our link prefix, route protocol and nft table (they follow the current config) */
  claims(): { linkPrefix: string; routeProtocol: number; nftTable: string };
  /** watch this network namespace (name or path) instead of our own */
  netns?: string;
}

export interface NetworkWatch {
  close(): Promise<void> | void;
}

/**
 * What the system's services said (Linux: the system bus, monitor/system-bus.ts).
 * `resolved`: systemd-resolved started, and may have forgotten runtime per-link settings;
 * `resolved-changed`: resolved's per-link settings changed (ours echo too: the receiver
 * decides); `network-manager`: NetworkManager reconfigured (a device or connection activated,
 * a DHCP lease, its global state); `resume`: the machine woke from sleep.
 */
export interface SystemEvent {
  kind: 'resolved' | 'resolved-changed' | 'network-manager' | 'resume';
  detail: string;
}

export interface SystemWatchOptions {
  onEvent(e: SystemEvent): void;
}

export interface SystemWatch {
  close(): Promise<void> | void;
}
