/** The network wake source a platform offers the daemon (resources/registry.ts `watchNetwork`). */

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
