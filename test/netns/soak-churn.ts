/**
 * The soak's churn (soak-support.ts): config edits, underlay flaps, peer restarts, capture
 * rotation and sampling, each a loop until the run is over; a step that throws ends them all.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { isConverged } from '../../src/daemon/runs.js';
import { UNROUTED_LINK } from '../../src/model/unrouted.js';
import { cgroupDir } from '../helpers/awg.js';
import { nsExec } from '../helpers/netns.js';
import {
  ROUTER_UL,
  UPLINK,
  awgCli,
  capture,
  classify,
  parsePcap,
  startPeer,
  vpnTunnel,
  type Topo,
} from './leak-support.js';
import { soakRules, type SoakPrograms } from './soak-programs.js';
import { childrenOf, countCgroups, nftCounts, procReading, type Observer } from './soak-observe.js';
import type {
  ObjectCounts,
  ObjectSample,
  Sample,
  SoakOptions,
  SoakResult,
  World,
} from './soak-support.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Variant = { label: string; appsTarget: string; extra: boolean; system: string };
/** A → B: a target changes, a rule is added; B → C: a target and dns.system change; C → A: a rule is removed, dns.system changes */
export const VARIANTS: Variant[] = [
  { label: 'A', appsTarget: 'vpn', extra: false, system: 'default-tunnel' },
  { label: 'B', appsTarget: 'direct', extra: true, system: 'default-tunnel' },
  { label: 'C', appsTarget: 'vpn', extra: true, system: 'keep' },
];

export function configOf(t: Topo, v: Variant, p: SoakPrograms): string {
  return `version: 1
tunnels:
${vpnTunnel(t)}rules:
${soakRules(p, v)}default: vpn
dns: { leakProtection: true, system: ${v.system} }
ipv6: block
killSwitch: { enabled: true, allowLan: false }
`;
}

/** writes by rename, as an editor or a checkout does (the daemon watches the directory) */
export function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

export async function churn(
  w: World,
  o: SoakOptions,
  obs: Observer,
  r: SoakResult,
  signal: AbortSignal | undefined,
  onLoad: (l: number) => void,
): Promise<void> {
  const t0 = Date.now();
  const end = t0 + o.durationMs;
  const daemon = w.daemon!;
  // a churn step that throws stops every loop: the soak ends at once with that problem
  let broken = false;
  const over = () =>
    broken || Date.now() >= end || signal?.aborted === true || daemon.child.exitCode !== null;
  const guard = (name: string, loop: () => Promise<void>) =>
    loop().catch((e: unknown) => {
      broken = true;
      r.problems.push(`${name}: ${(e as Error).stack ?? String(e)}`);
    });
  // the underlay is flapped and a capture started one at a time (tcpdump on a link going down
  // never said it was listening)
  let link: Promise<unknown> = Promise.resolve();
  const onLink = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = link.then(fn, fn);
    link = run.catch(() => {});
    return run;
  };
  /** sleep until `at` or the end; false when over */
  const until = async (at: number) => {
    while (!over() && Date.now() < at) await sleep(Math.min(250, at - Date.now()));
    return !over();
  };
  // a period longer than the run still happens once: its first at a share of the run
  const first = (period: number, share: number) => Math.min(period, o.durationMs * share);

  let lastObjects = 0;
  const edits = async () => {
    for (let i = 1; await until(t0 + i * o.editEveryMs); i++) {
      const from = obs.seq;
      const label = VARIANTS[i % VARIANTS.length]!.label;
      const wrote = Date.now();
      writeAtomic(w.follow, readFileSync(w.configs[i % VARIANTS.length]!, 'utf8'));
      r.edits.done++;
      const c = await obs.converged(from, wrote + o.convergeBoundMs);
      if (typeof c !== 'string') {
        r.edits.converged++;
        r.edits.latenciesMs.push(Date.parse(c.done.at) - wrote);
        o.log(
          `edit ${r.edits.done} → ${label}: config-changed +${c.changedAt - wrote} ms, converged +${Date.parse(c.done.at) - wrote} ms (run ${c.done.durationMs} ms, ${c.done.reason})`,
        );
      } else {
        r.edits.notConverged.push(
          `edit ${r.edits.done} (→ ${label}) at +${((wrote - t0) / 1000).toFixed(1)} s: ${c} within ${o.convergeBoundMs} ms`,
        );
        // the daemon may still get there: wait for it before the next edit, unbounded by the cadence
        await obs.next(
          obs.seq,
          (e) => e.type === 'reconcile-finished' && isConverged(e.outcome),
          Date.now() + 5 * o.convergeBoundMs,
        );
      }
      if (Date.now() - lastObjects >= o.sampleEveryMs) {
        lastObjects = Date.now();
        const x = await sampleObjects(w, obs, label);
        if (x) r.objectSamples.push({ t: Date.now() - t0, ...x });
      }
    }
  };

  const flaps = async () => {
    for (let at = t0 + first(o.flapEveryMs, 0.3); await until(at); at += o.flapEveryMs) {
      await onLink(async () => {
        try {
          await nsExec(w.t.client, 'ip', ['link', 'set', UPLINK, 'down']);
          await sleep(o.flapDownMs);
          await nsExec(w.t.client, 'ip', ['link', 'set', UPLINK, 'up']);
          // the kernel drops the routes of a link that goes down: ours comes back, awg's are awg's
          const routes = await nsExec(w.t.client, 'ip', ['-4', 'route', 'show', 'default']);
          if (!routes.stdout.includes(`via ${ROUTER_UL}`))
            await nsExec(w.t.client, 'ip', ['route', 'add', 'default', 'via', ROUTER_UL]);
          r.flaps.done++;
        } catch (e) {
          r.flaps.failed.push((e as Error).message.slice(0, 300));
        }
      });
    }
  };

  const peers = async () => {
    for (let at = t0 + first(o.peerEveryMs, 0.5); await until(at); at += o.peerEveryMs) {
      const d = await awgCli(w.t.peer, w.t.pe, ['down']);
      if (d.code !== 0) r.peerRestarts.failed.push(`peer down: ${d.out.slice(0, 300)}`);
      await sleep(1000);
      try {
        await startPeer(w.t);
        r.peerRestarts.done++;
      } catch (e) {
        r.peerRestarts.failed.push(`peer apply: ${(e as Error).message.slice(0, 300)}`);
      }
    }
  };

  const rotate = async () => {
    for (let at = t0 + o.captureRotateMs; await until(at); at += o.captureRotateMs) {
      // the next capture starts before the last stops: no packet goes unseen
      const next = await onLink(() => capture(w.t, w.e.dir));
      const prev = w.captures.pop()!;
      w.captures.push(next);
      judgeCapture(w, r, await prev.stop());
    }
  };

  const sample = async () => {
    for (let at = t0; await until(at); at += o.sampleEveryMs) {
      const s = await takeSample(w, t0);
      r.samples.push(s);
      onLoad(s.load1);
      o.log(
        `+${(s.t / 1000).toFixed(0)} s: daemon ${(s.rssKb / 1024).toFixed(1)} MB ${s.fds} fds, placer ${s.placer ? `${(s.placer.rssKb / 1024).toFixed(1)} MB ${s.placer.fds} fds` : 'none'}, placement errors ${s.placement?.errors ?? '?'}; edits ${r.edits.converged}/${r.edits.done}, calls ${r.api.calls} (${r.api.failures} failed), execs ${w.launcher!.counts().started}, load ${s.load1.toFixed(2)}`,
      );
    }
  };

  await Promise.all([
    guard('config edits', edits),
    guard('underlay flaps', flaps),
    guard('peer restarts', peers),
    guard('capture rotation', rotate),
    guard('sampling', sample),
  ]);
  r.ranMs = Date.now() - t0;
  if (daemon.child.exitCode !== null)
    r.daemon.died = `awg daemon exited ${daemon.child.exitCode} at +${(r.ranMs / 1000).toFixed(1)} s:\n${daemon.output().slice(-3000)}`;
}

async function takeSample(w: World, t0: number): Promise<Sample> {
  const pid = w.daemon!.pid;
  const d = procReading(pid) ?? { rssKb: 0, anonKb: 0, fds: 0, cpuTicks: 0 };
  const kids = childrenOf(pid);
  const placerKid = kids.find((k) => / placer\b/.test(k.cmd));
  const p = placerKid ? procReading(placerKid.pid) : undefined;
  const s: Sample = {
    t: Date.now() - t0,
    ...d,
    placer:
      placerKid && p
        ? { pid: placerKid.pid, rssKb: p.rssKb, anonKb: p.anonKb, fds: p.fds }
        : undefined,
    otherChildren: kids.length - (placerKid ? 1 : 0),
    load1: loadavg()[0]!,
  };
  try {
    const pl = (await w.sampler!.status()).placement;
    if (pl) s.placement = { execs: pl.execs, placed: pl.placed, errors: pl.errors };
  } catch {
    // the API clients count the API's failures
  }
  return s;
}

/**
 * the objects of config `label`, unless a run started or was under way while they were read,
 * or the last run planned with another tunnel health than the status shows (Observer.plannedWith)
 */
async function sampleObjects(
  w: World,
  obs: Observer,
  label: string,
): Promise<Omit<ObjectSample, 't'> | undefined> {
  const started = obs.started;
  if (obs.busy) return undefined;
  try {
    const [status, nft] = await Promise.all([
      w.sampler!.status(),
      nsExec(w.t.client, 'nft', ['-j', 'list', 'table', 'inet', 'awg']),
    ]);
    const n = nftCounts(nft.stdout);
    const objects: ObjectCounts = {
      cgroups: countCgroups(cgroupDir(w.e)),
      nftRules: n.rules,
      nftSets: n.sets,
      nftElements: n.elements,
      engines: status.objects.filter((x) => x.kind === 'engine').length,
      awgObjects: status.objects.length,
    };
    if (obs.started !== started || obs.busy) return undefined;
    // the table holds the health the last run planned with (a down tunnel's rules take their
    // fallback: a block-fallback rule's 3 rules — IPv6 drop, mark, per-app DNS — become one
    // drop), the status the health now: a transition after the run before it finished (a
    // peer restart, an underlay flap) is the next run's to apply, not a changed object count
    if (!obs.plannedWith(new Map(status.tunnels.map((x) => [x.name, x.health ?? '?']))))
      return undefined;
    const health = status.tunnels.map((x) => `${x.name} ${x.health ?? '?'}`).join(', ');
    // while a flap has taken the underlay's default route, the run after it adds the first
    // route of a host without one (awg-_noroute, its route, two rules, a reject): another
    // state with objects of its own, keyed apart so each is held to its own counts
    const unrouted = status.objects.some((x) => x.id.includes(UNROUTED_LINK));
    return {
      key: `config ${label}, ${health}${unrouted ? ', no default route' : ''}`,
      objects,
    };
  } catch {
    // no object sample; the API clients count the API's failures
    return undefined;
  }
}

export function judgeCapture(w: World, r: SoakResult, pcap: Buffer): void {
  const v = classify(parsePcap(pcap, w.t.clientMac), { allowLan: false });
  r.leak.captures++;
  r.leak.leaks += v.leaks.length;
  r.leak.wireguard += v.wireguard;
  for (const l of v.leaks) if (r.leak.first.length < 20) r.leak.first.push(l);
}
