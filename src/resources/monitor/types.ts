/** The network wake source a platform offers the daemon (resources/registry.ts `watchNetwork`). */

export interface NetworkWatchOptions {
  /** called with a short description of the first change of a batch that matters */
  onChange(detail: string): void;
  /** true while our own changes may still echo back (they are ignored then) */
  isEcho(): boolean;
  /** our link prefix and route protocol (they follow the current config) */
  claims(): { linkPrefix: string; routeProtocol: number };
  /** watch this network namespace (name or path) instead of our own */
  netns?: string;
}

export interface NetworkWatch {
  close(): Promise<void> | void;
}
