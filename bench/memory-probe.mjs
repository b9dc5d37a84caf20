// A preload for measuring where a long-running awg process's memory goes (bench/RESULTS.md,
// "The daemon's idle RSS as installed"): NODE_OPTIONS="--import=<repo>/bench/memory-probe.mjs"
// with AWG_MEMORY_PROBE=<file> makes every `awg up`/`awg daemon`/`awg engine` process append, every 2 s,
// one JSON line: its RSS, the V8 heap and external/array-buffer sizes, and the six largest
// resident mappings of /proc/self/smaps (the node executable, anonymous memory, glibc's heap);
// with AWG_MEMORY_PROBE_SNAPSHOT=<ms> also one V8 heap snapshot that long after start, next
// to <file>; with AWG_MEMORY_PROBE_SMAPS=1 also each sample's whole /proc/self/smaps and the
// addresses of the node executable's resident code pages (<file>.<pid>.smaps.N / .text.N: which
// of V8's and Node's code a process touched, by symbol: `nm -C -n node`); with
// AWG_MEMORY_PROBE_ALLOC=<start ms>,<duration ms> V8's sampling heap profile of that window,
// collected objects included (<file>.<pid>.alloc.json: where a process allocates). The probe's
// own reads allocate about 1 MiB per sample: heap figures taken with it creep. Other processes
// (the bench itself) load it and do nothing.
import {
  appendFileSync,
  closeSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync,
} from 'node:fs';
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
    return Object.entries(rss)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, kib]) => `${k.split('/').pop()} ${(kib / 1024).toFixed(1)} MiB`);
  };
  let sample = 0;
  setInterval(() => {
    if (process.env.AWG_MEMORY_PROBE_SMAPS) {
      const smaps = readFileSync('/proc/self/smaps', 'utf8');
      appendFileSync(`${out}.${process.pid}.smaps.${sample}`, smaps);
      // the resident pages of the node executable's code, by address (bench/RESULTS.md: what Node 24 touches)
      const fd = openSync('/proc/self/pagemap', 'r');
      const pages = [];
      for (const m of smaps.matchAll(/^([0-9a-f]+)-([0-9a-f]+) r-xp \S+ \S+ \S+\s+(\S*)$/gm)) {
        if (!m[3].endsWith('/node')) continue;
        const a = parseInt(m[1], 16) / 4096,
          b = parseInt(m[2], 16) / 4096;
        const buf = Buffer.alloc((b - a) * 8);
        readSync(fd, buf, 0, buf.length, a * 8);
        for (let i = 0; i < b - a; i++) if (buf.readBigUInt64LE(i * 8) >> 63n) pages.push(a + i);
      }
      closeSync(fd);
      writeFileSync(`${out}.${process.pid}.text.${sample}`, pages.join('\n'));
      sample++;
    }
    const m = process.memoryUsage();
    const mib = (n) => Number((n / 1048576).toFixed(1));
    appendFileSync(
      file,
      JSON.stringify({
        at: Date.now(),
        rss: mib(m.rss),
        heapTotal: mib(m.heapTotal),
        heapUsed: mib(m.heapUsed),
        external: mib(m.external),
        arrayBuffers: mib(m.arrayBuffers),
        mappings: mappings(),
      }) + '\n',
    );
  }, 2000).unref();
  // AWG_MEMORY_PROBE_ALLOC=<start ms>,<duration ms>: V8's sampling heap profiler over that window,
  // counting what was collected too (where an idle process allocates), into <file>.alloc.json
  const alloc = process.env.AWG_MEMORY_PROBE_ALLOC?.split(',').map(Number);
  if (alloc) {
    const { Session } = await import('node:inspector');
    const s = new Session();
    s.connect();
    setTimeout(() => {
      s.post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      setTimeout(
        () =>
          s.post('HeapProfiler.stopSampling', (err, r) => {
            if (!err) writeFileSync(`${out}.${process.pid}.alloc.json`, JSON.stringify(r.profile));
          }),
        alloc[1],
      ).unref();
    }, alloc[0]).unref();
  }
  const after = Number(process.env.AWG_MEMORY_PROBE_SNAPSHOT);
  if (after > 0)
    setTimeout(() => v8.writeHeapSnapshot(`${out}.${process.pid}.heapsnapshot`), after).unref();
}
