/**
 * A crypto pool thread (pool.ts starts it): sleeps on the pool's sequence word, and when a run
 * is published takes and runs that queue's jobs beside the engine's thread (pool-jobs.ts).
 * Holds no protocol state: keys only for the length of a job, in its own EVP context.
 *
 * Queues and memory regions arrive as messages on `port`, read synchronously
 * (receiveMessageOnPort) when a run names one this thread has not seen yet: the thread never
 * returns to an event loop. Regions are views (koffi) of memory the engine's thread owns and
 * keeps alive while a run that names them is under way.
 */
import {
  type MessagePort,
  isMainThread,
  receiveMessageOnPort,
  workerData,
} from 'node:worker_threads';
import { evpAeadContext } from '../../native/libcrypto-batch.js';
import { viewAt } from '../../native/rawmem.js';
import { C_GEN, C_QUEUE, C_READY, C_SEQ, C_STOP, KEYS_AT, KEYS_MAX, runJobs } from './pool-jobs.js';

export interface PoolWorkerData {
  control: Int32Array;
  port: MessagePort;
}

/** what pool.ts posts on the port */
export type PoolMessage =
  | { kind: 'queue'; id: number; sab: SharedArrayBuffer }
  | { kind: 'region'; id: number; address: string; length: number }
  | { kind: 'region-sab'; id: number; sab: SharedArrayBuffer }
  | { kind: 'forget'; id: number }
  | { kind: 'forget-queue'; id: number };

function run({ control, port }: PoolWorkerData): void {
  const ctx = evpAeadContext();
  if (!ctx) throw new Error('the crypto pool needs libcrypto (AWG_AEAD=node turns the pool off)');
  const queues = new Map<number, { q: Int32Array; keys: Uint8Array }>();
  const regions = new Map<number, Uint8Array>();
  const drain = (): void => {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as PoolMessage;
      if (msg.kind === 'queue')
        queues.set(msg.id, {
          q: new Int32Array(msg.sab, 0, KEYS_AT / 4),
          keys: new Uint8Array(msg.sab, KEYS_AT, KEYS_MAX * 32),
        });
      else if (msg.kind === 'region') regions.set(msg.id, viewAt(BigInt(msg.address), msg.length));
      else if (msg.kind === 'region-sab') regions.set(msg.id, new Uint8Array(msg.sab));
      else if (msg.kind === 'forget-queue') queues.delete(msg.id);
      else regions.delete(msg.id);
    }
  };
  const view = (id: number): Uint8Array | undefined => {
    let r = regions.get(id);
    if (!r) {
      drain();
      r = regions.get(id);
    }
    return r;
  };
  const nonce = new Uint8Array(12);
  let seen = Atomics.load(control, C_SEQ);
  // counted after reading the sequence: a run the engine publishes from now on wakes us
  Atomics.add(control, C_READY, 1);
  for (;;) {
    Atomics.wait(control, C_SEQ, seen);
    if (Atomics.load(control, C_STOP)) break;
    seen = Atomics.load(control, C_SEQ);
    const id = Atomics.load(control, C_QUEUE);
    const gen = Atomics.load(control, C_GEN);
    let entry = queues.get(id);
    if (!entry) {
      drain();
      entry = queues.get(id);
    }
    if (entry) runJobs(entry.q, entry.keys, gen, view, ctx, nonce);
  }
  ctx.free();
}

// loaded anywhere else (a module scan, a bundler) it does nothing
if (!isMainThread && (workerData as PoolWorkerData | null)?.control)
  run(workerData as PoolWorkerData);
