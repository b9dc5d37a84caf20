/**
 * Node flags for awg's long-running processes (the `awg engine` processes `awg apply` starts
 * and the `awg daemon` of the service units). V8's default young generation grows to 16 MiB
 * semi-spaces, which a packet-per-buffer data plane fills at once and keeps: with 1 MiB the
 * engine's VmRSS after the throughput runs fell from 136 to 87 MiB and the daemon's with three
 * idle tunnels from 98 to 80 MiB, at the same throughput (bench/RESULTS.md, "Step 10 —
 * memory").
 */
export const LONG_RUNNING_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/**
 * Node flags for the short CLI commands where the launcher can set them (the Debian package's
 * /usr/bin/awg; `node bin/awg.js` and npm's shim run with Node's defaults): a young generation
 * that starts large enough that start-up does not collect. V8 starts with 1 MiB semi-spaces and
 * grows them one scavenge at a time: `awg validate` of the reference config ran 5 scavenges
 * (≈ 8 ms on the main thread) with the default, none with 16 MiB (bench/RESULTS.md, Step 12).
 * The memory is the command's own, returned when it exits.
 */
export const SHORT_LIVED_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];

/** The commands that run long (a launcher gives them LONG_RUNNING_NODE_FLAGS instead). */
export const LONG_RUNNING_COMMANDS: readonly string[] = ['daemon', 'up', 'engine', 'placer'];
