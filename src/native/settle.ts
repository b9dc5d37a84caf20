/**
 * What a long-running awg process (the daemon, `awg up`, an `awg engine`) gives back once it
 * settles: after a reconcile run (daemon/runs.ts) and when its tunnels go quiet (the data plane's
 * idle release, dataplane/buffers.ts). A full garbage collection in V8's memory-reducing mode
 * (only where `gc` is exposed: the long-running processes' `--expose-gc`, util/node-flags.ts),
 * then glibc's free pages back to the kernel (`malloc_trim`), and the clean pages of mapped
 * files — the node executable's code and read-only data above all — out of the process
 * (native/filepages.ts; what is still used faults back in from the page cache).
 *
 * The collection stops the main thread for a few milliseconds, so it never runs while a
 * tunnel of this process carries traffic: devices say when they are busy (`setBusy`).
 * A device is busy with 32 receive batches within its 5 s check period (keepalives and
 * handshakes are not). Together with the idle release of the data plane's buffers and no
 * Maglev it brought the daemon with three tunnels on Node 24 under its memory bar, idle and
 * idle again after traffic. Measurements: bench/RESULTS.md, section "The daemon on Node 24
 * under its bar".
 * AWG_SETTLE_GC=0 leaves the collection to V8 (diagnosis); the trim always runs.
 * AWG_SETTLE_FILE_PAGES=0 keeps the file pages.
 */
import { releaseFilePages } from './filepages.js';
import { mallocTrim } from './libc.js';

type Gc = (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * Node 20's V8 (11.3) takes the options form of `gc()` and does not collect (measured: 47 MiB
 * of dropped objects left on the heap, plain `gc()` freed them); Node 22 and 24 collect with
 * it, and its memory-reducing flavor is what they should run. Node 20 gets the plain call, a
 * full synchronous collection.
 */
export const GC_OPTIONS_COLLECT = Number(process.versions.node.split('.')[0]) >= 22;

const busy = new Set<object>();
let timer: NodeJS.Timeout | undefined;

/** Marks `owner` (a device) as carrying traffic or not; settling collects only when none is. */
export function setBusy(owner: object, isBusy: boolean): void {
  if (isBusy) busy.add(owner);
  else busy.delete(owner);
}

/** Settles once, `delayMs` from now (calls in the meantime join it). */
export function settleSoon(delayMs = 100): void {
  if (timer) return;
  timer = setTimeout(() => {
    timer = undefined;
    settleNow();
  }, delayMs).unref();
}

/**
 * After a collection the backing stores of dead ArrayBuffers (packet batches, child output)
 * are freed by V8's sweeper on its own thread, after `gc()` returns: a second trim this much
 * later gives their pages back too.
 */
export const SWEEP_TRIM_MS = 1000;
let sweepTimer: NodeJS.Timeout | undefined;

/**
 * Collects (when `gc` is exposed and no tunnel is busy), trims, and releases the clean file
 * pages (when no tunnel is busy: a busy one would fault its code straight back); says what it
 * did.
 */
export function settleNow(): { collected: boolean; trimmed: boolean; filePages: number } {
  const gc = (globalThis as { gc?: Gc }).gc;
  const collect = typeof gc === 'function' && busy.size === 0 && process.env.AWG_SETTLE_GC !== '0';
  if (collect) {
    if (GC_OPTIONS_COLLECT) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    else gc();
    clearTimeout(sweepTimer);
    sweepTimer = setTimeout(() => {
      sweepTimer = undefined;
      mallocTrim();
    }, SWEEP_TRIM_MS).unref();
  }
  const trimmed = mallocTrim();
  return { collected: collect, trimmed, filePages: busy.size === 0 ? releaseFilePages() : 0 };
}
