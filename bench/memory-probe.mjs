// A preload for measuring where a long-running awg process's memory goes (bench/RESULTS.md,
// "The daemon's idle RSS as installed"): NODE_OPTIONS="--import=<repo>/bench/memory-probe.mjs"
// with AWG_MEMORY_PROBE=<file> makes every `awg up`/`awg daemon`/`awg engine` process append, every 2 s,
// one JSON line: its RSS, the V8 heap and external/array-buffer sizes, and the six largest
// resident mappings of /proc/self/smaps (the node executable, anonymous memory, glibc's heap);
// with AWG_MEMORY_PROBE_SNAPSHOT=<ms> also one V8 heap snapshot that long after start, next
// to <file>. Other processes (the bench itself) load it and do nothing.
import { appendFileSync, readFileSync } from 'node:fs';
import { setInterval, setTimeout } from 'node:timers';
import v8 from 'node:v8';

const out = process.env.AWG_MEMORY_PROBE;
if (out && process.argv.some((a) => a === 'up' || a === 'daemon' || a === 'engine')) {
  const file = `${out}.${process.pid}.jsonl`;
  const mappings = () => {
    const rss = {};
    let name;
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m) name = m[1] || '[anon]';
      const r = /^Rss:\s+(\d+)/.exec(line);
      if (r && name) rss[name] = (rss[name] ?? 0) + Number(r[1]);
    }
    return Object.entries(rss).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, kib]) => `${k.split('/').pop()} ${(kib / 1024).toFixed(1)} MiB`);
  };
  setInterval(() => {
    const m = process.memoryUsage();
    const mib = (n) => Number((n / 1048576).toFixed(1));
    appendFileSync(file, JSON.stringify({ at: Date.now(), rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers), mappings: mappings() }) + '\n');
  }, 2000).unref();
  const after = Number(process.env.AWG_MEMORY_PROBE_SNAPSHOT);
  if (after > 0) setTimeout(() => v8.writeHeapSnapshot(`${out}.${process.pid}.heapsnapshot`), after).unref();
}
