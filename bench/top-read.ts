/**
 * The cost of one reading of the Linux traffic source (`awg top`'s kernel side,
 * src/procs/top/linux.ts) at N open TCP connections: a private network namespace, one
 * process holding N loopback connections (both ends: 2N sockets, N conntrack entries), and
 * `read()` timed (wall and this process's CPU). Needs root.
 *
 *   npx tsx bench/top-read.ts [connections=1000] [reads=20]
 *
 * `measureTopRead` is the same for another benchmark to call.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { linuxTrafficSource } from '../src/procs/top/linux.js';
import { machine, measure, type Sample } from './lib.js';

const HOLDER = `
const net = require('net');
const n = Number(process.argv[1]);
const keep = [];
const srv = net.createServer((c) => { keep.push(c); c.on('data', () => {}); });
srv.listen(0, '127.0.0.1', async () => {
  const port = srv.address().port;
  for (let i = 0; i < n; i++) {
    await new Promise((res, rej) => { const c = net.connect(port, '127.0.0.1', res); c.on('error', rej); keep.push(c); c.write('x'); });
  }
  console.log('ready');
});
`;

export interface TopReadResult {
  connections: number;
  /** flows in one reading (both ends of each connection: 2N) */
  flows: number;
  read: Sample;
}

/** Time `reads` readings at `connections` loopback TCP connections in a fresh namespace. */
export async function measureTopRead(connections = 1000, reads = 20): Promise<TopReadResult> {
  const ns = `awgb-top-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const inNs = (cmd: string, args: string[], input?: string) =>
      execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, '--', cmd, ...args], {
        ...(input !== undefined ? { input } : {}),
      });
    inNs('ip', ['link', 'set', 'lo', 'up']);
    inNs('sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
    // conntrack runs in a namespace only once a rule needs it
    inNs(
      'nft',
      ['-f', '-'],
      'table inet awgb {\n chain o {\n type filter hook output priority 0\n ct state new counter\n }\n}\n',
    );
    const holder = spawn(
      'nsenter',
      [`--net=/var/run/netns/${ns}`, '--', process.execPath, '-e', HOLDER, String(connections)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        holder.on('exit', (c) => reject(new Error(`holder exited ${c}`)));
      });
      const source = linuxTrafficSource({ netns: ns });
      try {
        const first = await source.read();
        const read = await measure(
          `top read, ${connections} TCP connections`,
          reads,
          () => source.read(),
          {
            warmup: 2,
            note: `${first.flows.length} flows`,
          },
        );
        return { connections, flows: first.flows.length, read };
      } finally {
        source.close();
      }
    } finally {
      holder.kill('SIGKILL');
    }
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 1000);
  const reads = Number(process.argv[3] ?? 20);
  const r = await measureTopRead(n, reads);
  console.log(machine());
  console.log(
    `${r.read.name}: ${r.flows} flows, wall median ${r.read.median.toFixed(2)} ms (p90 ${r.read.p90?.toFixed(2)}), CPU median ${r.read.cpuMedian?.toFixed(2)} ms`,
  );
}
