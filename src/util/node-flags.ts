/**
 * Node flags for awg's long-running processes (the `awg engine` processes `awg apply` starts
 * and the `awg daemon` of the service units). V8's default young generation grows to 16 MiB
 * semi-spaces, which a packet-per-buffer data plane fills at once and keeps: with 1 MiB the
 * engine's VmRSS after the throughput runs fell from 136 to 87 MiB and the daemon's with three
 * idle tunnels from 98 to 80 MiB, at the same throughput (bench/RESULTS.md, "Step 10 —
 * memory"). Two V8 platform threads instead of Node's four (GC helpers and compile jobs; the
 * heaps here are small): the daemon with three idle tunnels 77.3–81.6 against 80.3–83.1 MiB in
 * alternating runs, the engine after the throughput runs 77.5 against 79.1 MiB, at the same
 * throughput (bench/RESULTS.md, Step 10, 2026-11-24). `gc` exposed so that the process can
 * collect once it settles — after a reconcile run, and when its tunnels go quiet — never while
 * a tunnel carries traffic (src/native/settle.ts): with the data plane's idle release, the
 * Node 24 daemon with three tunnels idle again after iperf3 90.8–93.3 → 78.4–79.4 MiB
 * (bench/RESULTS.md, Step 10, 2026-11-25). No Maglev (V8's
 * mid-tier compiler, on by default since Node 22): the data plane's hot code is optimised by
 * TurboFan either way, and Maglev's code and compiled output cost the Node 24 engine after
 * the throughput runs 6.5 MiB (78.6 → 72.1) at the same throughput, CPU and first ping
 * (bench/RESULTS.md, Step 10, 2026-11-25; Node 20 has it off already). Short CLI commands run
 * with Node's defaults.
 */
export const LONG_RUNNING_NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=1',
  '--v8-pool-size=2',
  '--expose-gc',
  '--no-maglev',
];
