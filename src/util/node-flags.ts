/**
 * Node flags for awg's long-running processes (the `awg engine` processes `awg apply` starts,
 * the `awg daemon` of the service units and `awg up`, and the daemon's `awg placer` child).
 * Each one lowers their memory at the same throughput (the measurements are in
 * bench/RESULTS.md, Step 10):
 * - 1 MiB semi-spaces: V8's young generation otherwise grows to 16 MiB semi-spaces, which a
 *   packet-per-buffer data plane fills at once and keeps. (With Node's defaults the placer's
 *   RSS rose from 68 to 94 MB over the first 20 minutes of the hour-long soak, 50 execs/s.)
 * - Two V8 platform threads instead of Node's four (GC helpers and compile jobs; the heaps
 *   here are small).
 * - `gc` exposed, so that the process can collect once it settles — after a reconcile run,
 *   and when its tunnels go quiet — never while a tunnel carries traffic
 *   (src/native/settle.ts); with the data plane's idle release this gives back what a burst
 *   of traffic left.
 * - No Maglev (V8's mid-tier compiler, on by default since Node 22; Node 20 has it off): the
 *   data plane's hot code is optimised by TurboFan either way, and Maglev's code and compiled
 *   output only add to the engine's memory, at the same CPU and first ping.
 * Short CLI commands run with Node's defaults.
 */
export const LONG_RUNNING_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=1',
  '--v8-pool-size=2',
  '--expose-gc',
  '--no-maglev',
];
