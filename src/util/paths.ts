/**
 * Where awg keeps its state and its API socket by default, per OS — the one place that
 * decides (flags and $AWG_STATE_DIR / $AWG_SOCKET override it):
 * - Linux: /var/lib/awg and /run/awg/awg.sock (systemd's StateDirectory and /run).
 * - macOS: no /run and no /var/lib; /Library/Application Support/awg (root-owned system
 *   data, kept across updates) and /var/run/awg/awg.sock (/var/run is cleared at boot, as
 *   /run is on Linux). The engines' UAPI sockets stay in /var/run/wireguard on both, where
 *   `wg` (and wireguard-go on macOS) look for them.
 * Paths with a space (macOS) are passed as single argv entries everywhere; no shell runs them.
 */
export interface DefaultPaths {
  stateDir: string;
  socket: string;
}

export function defaultPaths(os: NodeJS.Platform = process.platform): DefaultPaths {
  return os === 'darwin'
    ? { stateDir: '/Library/Application Support/awg', socket: '/var/run/awg/awg.sock' }
    : { stateDir: '/var/lib/awg', socket: '/run/awg/awg.sock' };
}
