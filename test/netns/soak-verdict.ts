/**
 * The soak's verdict and report (soak-support.ts runs it). Pure: a SoakResult in, figures and
 * failures out.
 *
 * - open fds (the daemon's, its placer's): under load a sample catches descriptors in passing
 *   (the API's connections, pipes to nft and ip), so they are judged at rest: no run under way
 *   for 2 s, no API client, one event stream, config A converged, before the load started and
 *   after it stopped (the fewest of five readings). Exactly flat: the end may hold no more than
 *   the start, and what grew is named by kind (socket, pipe, anon_inode:[eventfd], a path).
 *   The samples' fds under load are reported (start, end, max, the floor of each half).
 * Growth is judged on the samples after the warm-up (SoakOptions.warmupMs), split into halves:
 * - objects (cgroups under awg's subtree, rules, sets and set elements of table inet awg,
 *   engines, the status's objects): read right after an edit converged, no run under way and
 *   the last one planned with the health the status shows (soak-observe.ts plannedWith), and
 *   compared between samples of the same config and tunnel health; each must equal the first
 *   after the warm-up. Exactly flat: the same config converged gives the same objects.
 * - memory: judged on the anonymous part (RssAnon + VmSwap: the heap, malloc's), not RSS. RSS
 *   also holds the node executable's clean file pages, which a settling process gives back
 *   (src/native/settle.ts) and which fault back in as it runs: a sample just after a settle
 *   read the daemon's RSS 20 MB under its level (60.1 MB among samples of 80–84), and that
 *   one sample in the first half failed a run whose RSS ended where it started. V8's old space
 *   grows until a major collection, so the anonymous memory climbs by up to 75 MB over a
 *   minute or two and falls back (bench/RESULTS.md, Step 19): no two samples are compared.
 *   The floor of a half (its smallest sample, after a collection) is what stays live; it fails
 *   when the second half's floor exceeds the first's by more than RSS_RISE_MB (daemon) or
 *   PLACER_RSS_RISE_MB (placer). Halves, not thirds: a climb outlasted a third of the 5-minute
 *   run. The floor of every 5 minutes is reported too (`floors`); RSS's start, end and max.
 */
import type { ObjectSample, SoakResult } from './soak-support.js';

/**
 * The daemon's allowed rise of its anonymous memory's floor from the first half after warm-up
 * to the second, MB. Between collections the floors of runs without a leak differ by under
 * 3 MB (RESULTS.md); a leak of 100 bytes per placed exec (50/s) adds 9 MB a half hour, one of
 * 1 kB per API call (≈ 10 calls/s) 18 MB: the hour's run catches the second, and any leak of
 * 16 MB within 2 minutes in the 5-minute run.
 */
export const RSS_RISE_MB = 16;
/**
 * The placer child's, MB. Under 50 execs/s its RSS climbs 1–2 MB a minute between major
 * collections and one 5-minute run saw no collection after warm-up (+5 MB between the floors
 * of its halves; RESULTS.md); a leak of 1 kB per exec is 90 MB a half hour.
 */
export const PLACER_RSS_RISE_MB = 10;
/** the windows whose anonymous-memory floors are reported */
const FLOOR_WINDOW_MS = 5 * 60_000;

export interface Figures {
  warmupMs: number;
  judged: number;
  daemon: Track;
  placer?: Track | undefined;
  objects: { key: string; first: string; last: string; samples: number; mismatches: string[] }[];
  converge: { p50: number; p99: number; max: number; n: number };
  cpuPercent: number;
}

export interface Track {
  rssMb: { start: number; end: number; max: number };
  /** anonymous memory (RssAnon + VmSwap), MB: what growth is judged on */
  anonMb: { start: number; end: number; max: number; floorFirst: number; floorLast: number };
  /** the anonymous memory's floor in each FLOOR_WINDOW_MS after warm-up, MB */
  floors: number[];
  fds: { start: number; end: number; max: number; floorFirst: number; floorLast: number };
}

const mb = (kb: number) => kb / 1024;
const n1 = (x: number) => x.toFixed(1);
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2) : 0;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : 0;
};

function halves<T>(xs: T[]): [T[], T[]] {
  const n = Math.max(1, Math.floor(xs.length / 2));
  return [xs.slice(0, n), xs.slice(xs.length - n)];
}

function track(xs: { t: number; rssKb: number; anonKb: number; fds: number }[]): Track | undefined {
  if (!xs.length) return undefined;
  const [a, z] = halves(xs);
  const rss = xs.map((x) => mb(x.rssKb));
  const anon = xs.map((x) => mb(x.anonKb));
  const floors: number[] = [];
  for (const x of xs) {
    const i = Math.floor((x.t - xs[0]!.t) / FLOOR_WINDOW_MS);
    floors[i] = Math.min(floors[i] ?? Infinity, mb(x.anonKb));
  }
  return {
    floors,
    rssMb: { start: rss[0]!, end: rss[rss.length - 1]!, max: Math.max(...rss) },
    anonMb: {
      start: anon[0]!,
      end: anon[anon.length - 1]!,
      max: Math.max(...anon),
      floorFirst: Math.min(...a.map((x) => mb(x.anonKb))),
      floorLast: Math.min(...z.map((x) => mb(x.anonKb))),
    },
    fds: {
      start: xs[0]!.fds,
      end: xs[xs.length - 1]!.fds,
      max: Math.max(...xs.map((x) => x.fds)),
      floorFirst: Math.min(...a.map((x) => x.fds)),
      floorLast: Math.min(...z.map((x) => x.fds)),
    },
  };
}

const fmt = (o: object) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');

export function figures(r: SoakResult): Figures {
  const warm = r.samples.filter((s) => s.t >= r.options.warmupMs);
  const objects = new Map<string, ObjectSample[]>();
  for (const s of r.objectSamples)
    if (s.t >= r.options.warmupMs) objects.set(s.key, [...(objects.get(s.key) ?? []), s]);
  const lat = r.edits.latenciesMs;
  const first = r.samples[0];
  const last = r.samples[r.samples.length - 1];
  const ticks = first && last && last.t > first.t ? last.cpuTicks - first.cpuTicks : 0;
  return {
    warmupMs: r.options.warmupMs,
    judged: warm.length,
    daemon: track(warm) ??
      track(r.samples) ?? {
        rssMb: { start: 0, end: 0, max: 0 },
        anonMb: { start: 0, end: 0, max: 0, floorFirst: 0, floorLast: 0 },
        floors: [],
        fds: { start: 0, end: 0, max: 0, floorFirst: 0, floorLast: 0 },
      },
    placer: track(warm.flatMap((s) => (s.placer ? [{ t: s.t, ...s.placer }] : []))),
    objects: [...objects].map(([key, xs]) => ({
      key,
      first: fmt(xs[0]!.objects),
      last: fmt(xs[xs.length - 1]!.objects),
      samples: xs.length,
      mismatches: xs
        .filter((x) => fmt(x.objects) !== fmt(xs[0]!.objects))
        .map((x) => `+${(x.t / 1000).toFixed(0)} s: ${fmt(x.objects)}`),
    })),
    converge: {
      p50: med(lat),
      p99: pct(lat, 99),
      max: lat.length ? Math.max(...lat) : 0,
      n: lat.length,
    },
    // clock ticks are 1/100 s on Linux
    cpuPercent: first && last && last.t > first.t ? (ticks * 1000) / (last.t - first.t) : 0,
  };
}

/**
 * The streams opened one after another, each from the newest event on: from the first
 * reconcile-finished every stream got, each must get every later one (up to `upTo`, the newest
 * before the soak closed all but one).
 */
export function missedEvents(
  streams: { name: string; seqs: number[] }[],
  upTo = Infinity,
): string[] {
  const from = Math.max(...streams.map((s) => (s.seqs.length ? Math.min(...s.seqs) : Infinity)));
  if (!Number.isFinite(from)) return [];
  const all = new Set(streams.flatMap((s) => s.seqs.filter((q) => q >= from && q <= upTo)));
  return streams.flatMap((s) => {
    const got = new Set(s.seqs);
    const lost = [...all].filter((q) => !got.has(q));
    return lost.length
      ? [`${s.name} lacks ${lost.length} (seq ${lost.slice(0, 5).join(', ')})`]
      : [];
  });
}

/** every reason the soak failed; empty: it passed */
export function failures(
  r: SoakResult,
  f: Figures,
  o: { growth: boolean } = { growth: true },
): string[] {
  const out: string[] = [...r.problems];
  if (r.daemon.died) out.push(r.daemon.died);
  if (r.leak.leaks)
    out.push(
      `${r.leak.leaks} packet(s) left by the underlay: ${r.leak.first.slice(0, 10).join('; ')}`,
    );
  if (r.leak.captures === 0) out.push('no capture was judged');
  if (r.api.failures)
    out.push(`${r.api.failures} RPC(s) failed: ${r.api.errors.slice(0, 10).join(' | ')}`);
  for (const s of r.streams) {
    if (s.ended) out.push(`stream ${s.name} ended: ${s.ended}`);
    if (s.gaps) out.push(`stream ${s.name} got ${s.gaps} gap(s)`);
  }
  const missed = missedEvents(r.streams, r.streamsUpTo);
  if (missed.length) out.push(`streams missed reconcile-finished events: ${missed.join('; ')}`);
  const fewest = Math.min(...r.streams.map((s) => s.reconciles));
  if (r.streams.length && fewest < r.edits.converged)
    out.push(
      `a stream got ${fewest} reconcile-finished events for ${r.edits.converged} converged edits`,
    );
  if (r.edits.notConverged.length)
    out.push(
      `${r.edits.notConverged.length} edit(s) did not converge in time: ${r.edits.notConverged.slice(0, 10).join('; ')}`,
    );
  if (r.edits.done === 0) out.push('no config edit was made');
  if (r.flaps.failed.length) out.push(`underlay flaps failed: ${r.flaps.failed.join('; ')}`);
  if (r.peerRestarts.failed.length)
    out.push(`peer restarts failed: ${r.peerRestarts.failed.join('; ')}`);
  if (r.execs.spawnErrors) out.push(`${r.execs.spawnErrors} matched program(s) did not start`);
  if (r.execs.unplaced)
    out.push(
      `${r.execs.unplaced} of ${r.execs.checked} matched program(s) were not in their rule’s cgroup 100 ms after they started (last seen in ${r.execs.lastUnplaced})`,
    );
  if (r.execs.checked === 0) out.push('no matched program was checked');
  if (r.placerPids.length > 1)
    out.push(`the placer child was restarted: pids ${r.placerPids.join(', ')}`);
  if (!r.app.recovered)
    out.push('the tunnel did not carry the app’s traffic again after the churn');
  if (r.daemon.exit !== undefined && r.daemon.exit !== 0)
    out.push(`awg daemon exited ${r.daemon.exit} on SIGTERM`);
  if (r.daemon.leftProcesses.length) out.push(`left running: ${r.daemon.leftProcesses.join('; ')}`);
  const rest = r.rest;
  if (!rest.start || !rest.end) out.push('the descriptors at rest were not read');
  else if (
    rest.end.daemon.count > rest.start.daemon.count ||
    (rest.start.placer && rest.end.placer && rest.end.placer.count > rest.start.placer.count)
  )
    out.push(`open descriptors at rest grew: ${rest.growth.join(', ')}`);
  for (const x of f.objects)
    if (x.mismatches.length)
      out.push(
        `objects changed for ${x.key} (first ${x.first}): ${x.mismatches.slice(0, 5).join('; ')}`,
      );
  const d = f.daemon;
  if (!o.growth) return out;
  if (f.judged < 3)
    out.push(`only ${f.judged} sample(s) after the warm-up: growth cannot be judged`);
  else {
    if (d.anonMb.floorLast - d.anonMb.floorFirst > RSS_RISE_MB)
      out.push(
        `the daemon's anonymous memory (heap, malloc) grew after warm-up: floor ${n1(d.anonMb.floorFirst)} → ${n1(d.anonMb.floorLast)} MB (limit +${RSS_RISE_MB} MB)`,
      );
    const p = f.placer;
    if (!p) out.push('no placer child was seen');
    else if (p.anonMb.floorLast - p.anonMb.floorFirst > PLACER_RSS_RISE_MB)
      out.push(
        `the placer's anonymous memory (heap, malloc) grew after warm-up: floor ${n1(p.anonMb.floorFirst)} → ${n1(p.anonMb.floorLast)} MB (limit +${PLACER_RSS_RISE_MB} MB)`,
      );
  }
  return out;
}

/** the figures as lines of text (the bench prints them; RESULTS.md takes them) */
export function report(r: SoakResult, f: Figures): string[] {
  const d = f.daemon;
  const p = f.placer;
  const streams = r.streams;
  return [
    `duration ${n1(r.ranMs / 60_000)} min, warm-up ${n1(f.warmupMs / 1000)} s, ${r.samples.length} samples (${f.judged} after warm-up); load average start ${r.load.start.map(n1).join(' ')}, end ${r.load.end.map(n1).join(' ')}, max 1-min ${n1(r.load.max1)}`,
    `daemon RSS after warm-up: start ${n1(d.rssMb.start)} MB, end ${n1(d.rssMb.end)} MB, max ${n1(d.rssMb.max)} MB; anonymous (RssAnon + VmSwap): start ${n1(d.anonMb.start)} MB, end ${n1(d.anonMb.end)} MB, max ${n1(d.anonMb.max)} MB, floor first half ${n1(d.anonMb.floorFirst)} → second half ${n1(d.anonMb.floorLast)} MB (limit +${RSS_RISE_MB})`,
    `anonymous memory's floor every ${FLOOR_WINDOW_MS / 60_000} min after warm-up: daemon ${d.floors.map(n1).join(' ')} MB${p ? `; placer ${p.floors.map(n1).join(' ')} MB` : ''}`,
    `daemon fds after warm-up: start ${d.fds.start}, end ${d.fds.end}, max ${d.fds.max}, floor first half ${d.fds.floorFirst} → second half ${d.fds.floorLast}`,
    p
      ? `placer RSS after warm-up: start ${n1(p.rssMb.start)} MB, end ${n1(p.rssMb.end)} MB, max ${n1(p.rssMb.max)} MB; anonymous: start ${n1(p.anonMb.start)} MB, end ${n1(p.anonMb.end)} MB, floor ${n1(p.anonMb.floorFirst)} → ${n1(p.anonMb.floorLast)} MB (limit +${PLACER_RSS_RISE_MB}); fds start ${p.fds.start}, end ${p.fds.end}, max ${p.fds.max}, floor ${p.fds.floorFirst} → ${p.fds.floorLast}; placer pids ${r.placerPids.join(', ')}`
      : 'placer: not seen',
    `daemon CPU ${n1(f.cpuPercent)} % of one core over the run`,
    ...f.objects.map(
      (o) =>
        `objects [${o.key}] (${o.samples} samples): start ${o.first}; end ${o.last}${o.mismatches.length ? `; ${o.mismatches.length} differ` : ''}`,
    ),
    `leak probe: ${r.leak.leaks} leaked packet(s), ${r.leak.wireguard} WireGuard datagrams to the endpoint, ${r.leak.captures} capture(s); app ${r.app.rounds} rounds, ${r.app.replies} replies, traffic back after the churn: ${r.app.recovered ? 'yes' : 'NO'}`,
    `config edits: ${r.edits.done} done, ${r.edits.converged} converged; converge latency p50 ${f.converge.p50} ms, p99 ${f.converge.p99} ms, max ${f.converge.max} ms (bound ${r.options.convergeBoundMs} ms)`,
    `reconciles: ${r.reconciles.finished} finished (${Object.entries(r.reconciles.byOutcome)
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )}); error events ${r.errorEvents.count}${r.errorEvents.first.length ? `: ${r.errorEvents.first.slice(0, 5).join(' | ')}` : ''}`,
    ...(r.reconciles.notConverged.length
      ? [`  runs not converged: ${r.reconciles.notConverged.slice(0, 10).join(' | ')}`]
      : []),
    `underlay flaps ${r.flaps.done}, peer restarts ${r.peerRestarts.done}`,
    `matched execs: ${r.execs.started} started (${n1(r.execs.started / Math.max(1, r.execs.ms / 1000))}/s), ${r.execs.spawnErrors} failed to start; placement checked ${r.execs.checked}: ${r.execs.placed} placed, ${r.execs.unplaced} not, ${r.execs.gone} gone; the placer counted ${r.placement ? `${r.placement.execs} execs, ${r.placement.placed} placed, ${r.placement.errors} errors (the exec gate's late decisions among them: a pass over 100 ms lets the exec go on and the watcher places it)` : 'nothing'}`,
    `API calls: ${r.api.calls}, failed ${r.api.failures}; per method (calls/failed, latency p50/p99): ${Object.entries(
      r.api.byMethod,
    )
      .map(([k, v]) => `${k} ${v.calls}/${v.failures}, ${med(v.ms)}/${pct(v.ms, 99)} ms`)
      .join('; ')}`,
    `event streams: ${streams.length} open, ${streams.filter((s) => s.ended).length} ended, gaps ${streams.reduce((a, s) => a + s.gaps, 0)}, events per stream ${Math.min(...streams.map((s) => s.events))}–${Math.max(...streams.map((s) => s.events))}, reconcile-finished per stream ${Math.min(...streams.map((s) => s.reconciles))}–${Math.max(...streams.map((s) => s.reconciles))}`,
    `descriptors at rest (start → end): daemon ${r.rest.start?.daemon.count ?? '?'} → ${r.rest.end?.daemon.count ?? '?'}, placer ${r.rest.start?.placer?.count ?? '?'} → ${r.rest.end?.placer?.count ?? '?'}${r.rest.growth.length ? `; grew: ${r.rest.growth.join(', ')}` : ''}`,
    `daemon stop: exit ${r.daemon.exit ?? 'n/a'}${r.daemon.leftProcesses.length ? `, left: ${r.daemon.leftProcesses.join('; ')}` : ', nothing left running'}`,
  ];
}
