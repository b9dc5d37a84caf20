/**
 * What the placement benchmarks share (placement-process, exec-gate): running commands, the
 * engine stand-in that loads the daemon's main thread, and the nft counters that tell
 * whether a packet's socket was created in the rule cgroup.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { NftCgroupRef } from '../src/resources/cgroup/parse.js';
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

/**
 * A namespace `ns` with loopback up and our counting table: UDP to port 9999 counted once
 * in "all" and, when its socket was created in the cgroup `ref`, in "placed".
 */
export function counterNamespace(ns: string, ref: NftCgroupRef): void {
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh(
    'nsenter',
    [`--net=/var/run/netns/${ns}`, '--', 'nft', '-f', '-'],
    `table inet awgtbench {
  chain out {
    type filter hook output priority 0; policy accept;
    udp dport 9999 socket cgroupv2 level ${ref.level} "${ref.path}" counter comment "placed"
    udp dport 9999 counter comment "all"
  }
}
`,
  );
}

/** packets between two counters() readings, and those whose socket was outside the cgroup */
export function wrongPath(
  c0: Record<string, number>,
  c1: Record<string, number>,
): { all: number; wrong: number } {
  const all = (c1.all ?? 0) - (c0.all ?? 0);
  return { all, wrong: all - ((c1.placed ?? 0) - (c0.placed ?? 0)) };
}

/** move what is left in the bench's cgroups (deepest first) to their parents, then remove them */
export function removeBenchCgroups(mountPoint: string, rels: string[]): void {
  for (const rel of rels) {
    const dir = join(mountPoint, rel);
    if (!existsSync(dir)) continue;
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        writeFileSync(join(dir, '..', 'cgroup.procs'), pid);
      } catch {
        /* exited */
      }
    }
    if (readdirSync(dir, { withFileTypes: true }).every((d) => !d.isDirectory())) rmdirSync(dir);
  }
}
