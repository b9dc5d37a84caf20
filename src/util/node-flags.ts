/**
 * Node flags for awg's long-running processes (the `awg engine` processes `awg apply` starts
 * and the `awg daemon` of the service units). V8's default young generation grows to 16 MiB
 * semi-spaces, which a packet-per-buffer data plane fills at once and keeps: with 1 MiB the
 * engine's VmRSS after the throughput runs fell from 136 to 87 MiB and the daemon's with three
 * idle tunnels from 98 to 80 MiB, at the same throughput (bench/RESULTS.md, "Step 10 —
 * memory"). Short CLI commands run with Node's defaults.
 */
export const LONG_RUNNING_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
