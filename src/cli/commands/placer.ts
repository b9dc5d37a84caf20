/**
 * `awg placer`: the daemon's process watcher in a small real-time child process (internal;
 * started by the daemon through procs/placer-process.ts). Newline-delimited JSON on
 * stdin/stdout (procs/placer-protocol.ts); the connector socket arrives as an inherited fd.
 * Loads nothing but the placer.
 */
export async function placerCommand(): Promise<number> {
  const { runPlacerProcess } = await import('../../procs/placer-child.js');
  return runPlacerProcess();
}
