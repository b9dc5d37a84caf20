/**
 * What the placement benchmarks share (placement-process, exec-gate): running commands, the
 * engine stand-in that loads the daemon's main thread, and the nft counters that tell
 * whether a packet's socket was created in the rule cgroup.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
}

export function runAsync(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('close', (c) => resolve(c ?? 1));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the engine stand-in: AEAD over packets in `busyMs` slices, yielding to the event loop between them */
export function engineLoad(busyMs: number, gapMs: number): { stop: () => number } {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const pkt = randomBytes(1420);
  let packets = 0;
  let stopped = false;
  const slice = () => {
    if (stopped) return;
    const end = performance.now() + busyMs;
    while (performance.now() < end) {
      nonce.writeUInt32LE(packets++, 4);
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      c.update(pkt);
      c.final();
    }
    setTimeout(slice, gapMs);
  };
  setTimeout(slice, 0);
  return {
    stop: () => {
      stopped = true;
      return packets;
    },
  };
}

export function counters(ns: string, table = 'awgtbench'): Record<string, number> {
  const j = JSON.parse(
    sh('nsenter', [
      `--net=/var/run/netns/${ns}`,
      '--',
      'nft',
      '-j',
      'list',
      'table',
      'inet',
      table,
    ]),
  ) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const out: Record<string, number> = {};
  for (const o of j.nftables) {
    const c = o.rule?.expr.find((x) => x.counter)?.counter;
    if (o.rule?.comment && c) out[o.rule.comment] = c.packets;
  }
  return out;
}

export const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

