/**
 * The fresh processes of bench/lists-scale.ts (`node --expose-gc --import tsx`):
 *
 * - `memory FILE`: reads the list as the loader does (parseListBytes), drops the bytes,
 *   settles (full collections and malloc_trim, as the daemon after a run) and prints one
 *   JSON line: the cold parse time, RSS, V8 heap and external memory before and after, the
 *   peak RSS (VmHWM), the set's counts;
 * - `stub FILE UPSTREAM_PORT`: the DNS stub (resources/dns-stub/stub.ts) with the list as one
 *   rule's domains, forwarding every query to 127.0.0.1:UPSTREAM_PORT (a dnsmasq); the
 *   kernel side is faked (no conntrack, the set writer acks at once), so what is measured is
 *   awg's own path: receive, forward, read the answer, match its names, book, answer. Prints
 *   `ready PORT {memory, settled}`, stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mallocTrim } from '../src/native/libc.js';
import { SWEEP_TRIM_MS } from '../src/native/settle.js';
import { parseListBytes } from '../src/config/list-formats/index.js';
import { DnsStub, type DnsStubDeps } from '../src/resources/dns-stub/stub.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const [mode, file, upstream] = process.argv.slice(2);
if (!file) throw new Error('usage: lists-child.ts memory|stub FILE [UPSTREAM_PORT]');

const MIB = 1024 * 1024;
/**
 * settled: full collections (plain gc(): on Node 20 the options form native/settle.ts passes
 * leaves garbage behind), then glibc's free pages back to the kernel once V8's sweeper freed
 * the dead buffers (malloc_trim), as the daemon gives memory back after a run
 */
async function mem() {
  gc!();
  gc!();
  await sleep(SWEEP_TRIM_MS + 200);
  gc!();
  mallocTrim();
  const m = process.memoryUsage();
  return { rss: m.rss / MIB, heapUsed: m.heapUsed / MIB, external: m.external / MIB };
}

/** VmHWM: this process's peak RSS (getrusage's maxrss keeps the forking parent's across exec) */
function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function load() {
  const t0 = performance.now();
  const { set, issues } = parseListBytes(readFileSync(file!), file!);
  const ms = performance.now() - t0;
  if (issues.some((i) => i.severity === 'error')) throw new Error(`${file}: ${issues[0]!.message}`);
  return { set, ms };
}

if (mode === 'memory') {
  const before = await mem();
  const { set, ms } = load();
  const after = await mem();
  process.stdout.write(
    `${JSON.stringify({
      parseMs: ms,
      before,
      after,
      maxRss: peakRss(),
      names: set.domains.counts.domains + set.domains.counts.wildcards + set.domains.counts.full,
      storeBytes: set.domains.bytes,
      v4: set.v4.length,
      entries: set.counts.entries,
    })}\n`,
  );
} else if (mode === 'stub') {
  const { set } = load();
  const origin = { addr: '127.0.0.1', port: Number(upstream), mark: 0 };
  const deps: DnsStubDeps = {
    udpOrigin: () => origin,
    tcpOrigin: () => origin,
    openWriter: () => ({
      add: () => Promise.resolve(),
      delete: () => Promise.resolve(),
      close() {},
    }),
    openDestinations: () => new Set(),
    marks: false,
    now: () => performance.now(),
  };
  const stub = new DnsStub(deps);
  for (let i = 0; ; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    try {
      await stub.start({
        port,
        table: 'awgbench',
        rules: [
          { rule: 'listed', domains: set.domains, sets: { v4: 'l4_listed', v6: 'l6_listed' } },
        ],
        fwmarkMask: 0x0f000000,
        bypassMark: 0x0f000000,
      });
      process.stdout.write(`ready ${port} ${JSON.stringify(await mem())}\n`);
      break;
    } catch (e) {
      if (i > 20) throw e;
    }
  }
  process.on('SIGTERM', () => {
    process.stdout.write(`${JSON.stringify(stub.stats())}\n`);
    stub.stop();
    process.exit(0);
  });
} else throw new Error(`unknown mode ${mode}`);
