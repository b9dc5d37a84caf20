import { toAwgError } from '../../errors.js';
import type { HostDeps } from './apply.js';
import { observeWith } from '../../reconciler/observe.js';
import { plan as makePlan } from '../../reconciler/plan.js';
import { RESOURCE_KINDS } from '../../model/resources.js';
import { DEFAULT_CLAIMS } from '../../pipeline/claims.js';
import { hostEnv } from '../../pipeline/host.js';
import { appliedHostConditions } from '../../pipeline/host-conditions.js';
import { loadPlatform } from '../../resources/registry.js';
import { viaDaemon } from '../via-daemon.js';
import { printError, warningReporter, type Io } from '../output.js';
import { needsDaemon, type DaemonChoice, type DaemonClient } from '../../daemon/client.js';
import type { DaemonEvent, RuleCounter, StatusResponse } from '../../daemon/core.js';
import { statusDocument } from '../../daemon/status-document.js';
import { formatEvent, humanBytes, limitRates } from '../foreground.js';
import { readDirectTraffic } from '../../daemon/traffic.js';
import { contentCount, readContents } from '../../resources/firewall/set-contents.js';
import { listStatusLines } from '../render-lists.js';
import { safeLine } from '../../util/sanitize.js';
import { errorKindsText } from '../../procs/placement-errors.js';
import type { ObservationRecord } from '../../pipeline/observation.js';
import {
  follow,
  isUnavailable,
  serviceText,
  type ReconnectDeps,
  type ServiceChange,
} from '../reconnect.js';

export interface StatusOptions extends DaemonChoice {
  stateDir?: string;
  json?: boolean;
  /** follow the daemon's events and re-render (daemon only) */
  watch?: boolean;
  /** also write the observation as a record for `awg diff --observed` (pipeline/observation.ts; the daemon's when one answers) */
  observedOut?: string;
  /** false (`--no-reconnect`): `--watch` ends when the daemon goes away */
  reconnect?: boolean | undefined;
}

/** injection for tests; defaults: stdout's TTY-ness, SIGINT/SIGTERM */
export interface WatchDeps extends HostDeps {
  tty?: boolean;
  until?: Promise<unknown>;
  reconnect?: ReconnectDeps;
}

/** Owned objects and their health against what was last applied. Exit 0 healthy, 2 drifted/none. */
export async function statusCommand(
  io: Io,
  o: StatusOptions,
  deps: WatchDeps = {},
): Promise<number> {
  // a daemon makes the observation record itself: it holds the applied record of its own
  // state directory, the claims and facts of the config it runs (pipeline/observation.ts)
  const d = await viaDaemon(io, o, async (client) => {
    if (o.observedOut) {
      try {
        await writeObservation(io, o.observedOut, await client.observation());
      } catch (e) {
        const err = toAwgError(e);
        printError(io, err);
        return err.exitCode;
      }
    }
    return o.watch ? watchStatus(io, o, client, deps) : statusViaDaemon(io, o, client);
  });
  if ('code' in d) return d.code;
  if (o.watch) {
    const err = needsDaemon('status --watch', d.reason);
    printError(io, err);
    return err.exitCode;
  }
  try {
    const platform = deps.platform ?? (await loadPlatform());
    const env = await hostEnv({
      platform,
      stateDir: o.stateDir,
      reporter: warningReporter(io),
      claims: DEFAULT_CLAIMS,
      ...(deps.exec ? { exec: deps.exec } : {}),
    });
    const last = env.applied.load();
    if (last) env.claims = last.claims;
    const desired = { resources: last?.resources ?? [], warnings: [] };
    const observed = await observeWith(env, desired);
    if (o.observedOut) {
      const { observationOf } = await import('../../pipeline/observation.js');
      const record = await observationOf(env, last, {
        observed,
        warn: (m) => io.err(`warning: ${m}\n`),
      });
      await writeObservation(io, o.observedOut, record);
    }
    const drift = last
      ? makePlan(desired, observed, { lastApplied: last.resources }).changes.filter(
          (c) => c.action !== 'noop',
        )
      : [];
    const healthy = Boolean(last) && drift.length === 0;
    const conditions = last ? await appliedHostConditions(platform, env, last.resources) : [];
    const doc = {
      source: 'direct' as const,
      state: !last
        ? observed.resources.length
          ? 'unmanaged-leftovers'
          : 'down'
        : healthy
          ? 'converged'
          : 'drifted',
      config: last?.configFile,
      appliedAt: last?.appliedAt,
      objects: observed.resources.map((r) => ({ kind: r.kind, id: r.id, spec: r.spec })),
      drift: drift.map((c) => ({ id: c.id, action: c.action, reason: c.reason })),
      foreign: observed.foreign,
      // per rule: the counters of its cgroup (all its processes together); per TUN tunnel: the link's
      // (macOS has no counters of ours to read yet)
      traffic:
        last && platform.trafficCounters === 'nft'
          ? await readDirectTraffic(
              env.exec,
              env.claims.nftTable,
              last.resources,
              contentCount(readContents(env.state, env.claims.nftTable)),
            )
          : { rules: [], tunnels: [] },
      ...(conditions.length ? { hostConditions: conditions } : {}),
    };
    if (o.json) {
      io.out(JSON.stringify(doc, null, 2) + '\n');
    } else {
      // ids, paths and descriptions carry names from the config and the machine: safeLine
      io.out(
        `state: ${doc.state}${last ? ` (config ${safeLine(last.configFile)}, applied ${safeLine(last.appliedAt)})` : ''}\n`,
      );
      for (const l of hostLines(conditions)) io.out(safeLine(l) + '\n');
      for (const kind of RESOURCE_KINDS) {
        const objs = observed.resources.filter((r) => r.kind === kind);
        if (objs.length)
          io.out(
            `${kind}: ${objs.length}\n` +
              objs
                .slice(0, 20)
                .map((r) => `  ${safeLine(r.id)}\n`)
                .join('') +
              (objs.length > 20 ? `  … ${objs.length - 20} more\n` : ''),
          );
      }
      for (const d of doc.drift)
        io.out(`drift: ${d.action} ${safeLine(d.id)} (${safeLine(d.reason)})\n`);
      for (const f of observed.foreign)
        io.out(`${f.relation}: ${safeLine(f.id)}: ${safeLine(f.description)}\n`);
      for (const t of doc.traffic.tunnels)
        io.out(
          safeLine(
            `tunnel ${t.tunnel} (${t.link}): rx ${t.rxPackets} packets ${bytes(t.rxBytes)}, tx ${t.txPackets} packets ${bytes(t.txBytes)}`,
          ) + '\n',
        );
      for (const r of doc.traffic.rules) {
        io.out(
          safeLine(
            `rule ${r.name}: tx ${r.txPackets} packets ${bytes(r.txBytes)}, rx ${r.rxPackets} packets ${bytes(r.rxBytes)}`,
          ) + '\n',
        );
        for (const l of ruleSetLines(r)) io.out(safeLine(l) + '\n');
      }
    }
    return healthy ? 0 : 2;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

// ---- client mode ----------------------------------------------------------------------------

const KINDS: readonly string[] = RESOURCE_KINDS;

const bytes = humanBytes;

/** a destination rule's sets under its line (hits, entries), then what it learned from DNS */
export function ruleSetLines(r: Pick<RuleCounter, 'sets' | 'learned' | 'learnedNames'>): string[] {
  const out = (r.sets ?? []).map(
    (x) =>
      `  set ${x.name} (${x.kind}): ${x.elements !== undefined ? `${x.elements.toLocaleString('en-US')} entries` : 'entries not read'}, hits ${x.packets} packets ${bytes(x.bytes)}`,
  );
  if (r.learned !== undefined || r.learnedNames !== undefined)
    out.push(
      `  learned: ${r.learned !== undefined ? `${r.learned} addresses` : 'addresses not read'}${r.learnedNames !== undefined ? ` from ${r.learnedNames} names` : ''}`,
    );
  return out;
}

const age = (s: number | undefined) => (s === undefined ? 'never' : `${s} s ago`);

/** what this host's routing keeps from working, one line each */
export function hostLines(conditions: StatusResponse['hostConditions']): string[] {
  return (conditions ?? []).map((h) => `host: ${h.message}`);
}

/** a newer awg the configured apt source offers, or why the last look failed */
export function updateLine(u: StatusResponse['update']): string | undefined {
  if (u?.available)
    return `update: awg ${u.candidate ?? '?'}${u.suites?.length ? ` (${u.suites.join(', ')})` : ''} is available, installed ${u.installed ?? '?'} — awg update --apply`;
  if (u?.error) return `update: the last check (${u.checkedAt}) failed: ${u.error}`;
  return undefined;
}

/** the first line of the status view (also the line `status --watch` prints on changes) */
export function statusHeadline(s: StatusResponse): string {
  const lr = s.lastReconcile;
  const parts = [
    s.configPath ? `config ${s.configPath}` : undefined,
    lr ? `last reconcile ${lr.at}: ${lr.outcome} in ${lr.durationMs} ms` : undefined,
  ].filter(Boolean);
  return safeLine(`state: ${s.state}${parts.length ? ` (${parts.join(', ')})` : ''}`);
}

/**
 * The daemon's status as text, in the shape of direct mode's view. Pure. Every line passes
 * safeLine: tunnel errors quote proxies' answers (HTTP reason phrases, SOCKS errors), ids and
 * endpoints carry names from the config.
 */
export function renderDaemonStatus(s: StatusResponse): string {
  return (
    statusLines(s)
      .map((l) => safeLine(l))
      .join('\n') + '\n'
  );
}

function statusLines(s: StatusResponse): string[] {
  const out: string[] = [statusHeadline(s)];
  const c = s.config;
  if (c) {
    const rev = (r: string | undefined) => (r ? r.slice(0, 12) : 'none');
    const git =
      c.revision || c.checkoutRevision
        ? `, revision ${rev(c.revision)}${c.checkoutRevision && c.checkoutRevision !== c.revision ? `, checkout at ${rev(c.checkoutRevision)}` : ''}`
        : '';
    out.push(
      `config: ${c.valid ? 'valid' : c.sources ? 'INVALID (the last good config keeps running)' : 'not applied'}${git}${c.host ? `, host ${c.host}` : ''}${c.lastConverged ? `, converged ${c.lastConverged}` : ''}`,
    );
    if (c.rollout) out.push(`rollout: revision ${rev(c.rollout.revision)} ${c.rollout.message}`);
    if (c.error) out.push(`config error: ${c.error}`);
    if (c.sources && c.sources.length > 1) out.push(`overlays: ${c.sources.slice(1).join(', ')}`);
    if (c.verifying)
      out.push(
        `revision ${rev(c.verifying.revision)}: checking after the apply until ${c.verifying.deadline} (reverted if it fails)`,
      );
    const held = c.rejected?.find((r) => r.revision === c.checkoutRevision);
    if (held)
      out.push(
        `revision ${rev(held.revision)} REJECTED at ${held.at}: ${held.reason}; revision ${rev(c.revision)} keeps running until a newer commit`,
      );
    const older = (c.rejected ?? []).filter((r) => r !== held).length;
    if (older) out.push(`rejected before: ${older} revision(s) (awg status --json lists them)`);
  }
  if (s.lastReconcile?.error)
    out.push(`error [${s.lastReconcile.error.kind}]: ${s.lastReconcile.error.message}`);
  out.push(...hostLines(s.hostConditions));
  const u = updateLine(s.update);
  if (u) out.push(u);
  out.push(...listStatusLines(s.lists));
  if (s.confirmDeadline)
    out.push(
      `confirm pending: run \`awg confirm\` by ${s.confirmDeadline} or the last apply is reverted`,
    );
  for (const kind of [
    ...KINDS,
    ...new Set(s.objects.map((x) => x.kind).filter((k) => !KINDS.includes(k))),
  ]) {
    const objs = s.objects.filter((r) => r.kind === kind);
    if (objs.length)
      out.push(
        `${kind}: ${objs.length}`,
        ...objs.slice(0, 20).map((r) => `  ${r.id}`),
        ...(objs.length > 20 ? [`  … ${objs.length - 20} more`] : []),
      );
  }
  for (const t of s.tunnels) {
    const conns =
      t.connectionsTotal !== undefined
        ? `, connections ${t.connectionsActive ?? 0} open/${t.connectionsTotal} total, dial errors ${t.dialErrors ?? 0}`
        : '';
    out.push(
      `tunnel ${t.name} (${t.type}${t.link ? `, ${t.link}` : ''}): ${t.health ?? (t.up ? 'up' : 'down')}${t.reason ? ` [${t.reason}${t.since ? ` since ${t.since}` : ''}]` : ''}${t.error ? ` (${t.error})` : ''}, handshake ${age(t.lastHandshakeAgeSec)}, rx ${bytes(t.rxBytes)}, tx ${bytes(t.txBytes)}${conns}`,
    );
    if (t.profile)
      out.push(
        `  obfuscation profile ${t.profile}${t.profileSwitches?.length ? `, switches: ${t.profileSwitches.map((w) => `${w.at} ${w.from} → ${w.to} (${w.reason})`).join('; ')}` : ''}`,
      );
    if (t.probe && (t.probe.failures > 0 || t.probe.lastFailure))
      out.push(
        `  probe: ${t.probe.failures} consecutive failure(s)${t.probe.lastFailure ? `; last failure${t.probe.lastFailureAt ? ` at ${t.probe.lastFailureAt}` : ''}: ${t.probe.lastFailure}` : ''}`,
      );
    for (const h of t.heldRules ?? [])
      out.push(`  rule ${h.rule}: held on fallback (sticky) since ${h.since}`);
    if (t.linkTraffic)
      out.push(
        `  link ${t.link ?? ''}: rx ${t.linkTraffic.rxPackets} packets ${bytes(t.linkTraffic.rxBytes)}, tx ${t.linkTraffic.txPackets} packets ${bytes(t.linkTraffic.txBytes)}`,
      );
    for (const p of t.peers)
      out.push(
        `  peer ${p.publicKey}${p.endpoint ? ` at ${p.endpoint}` : ''}: handshake ${age(p.lastHandshakeAgeSec)}, rx ${bytes(p.rxBytes)}, tx ${bytes(p.txBytes)}${p.persistentKeepalive ? `, keepalive every ${p.persistentKeepalive} s` : ''}`,
      );
  }
  if (s.placement) {
    const p = s.placement;
    const mode =
      p.mode === 'gated'
        ? `, gated (exec gate on ${p.gateMarks?.join(', ') ?? 'no file system'})`
        : p.mode === 'best-effort'
          ? `, best-effort (${p.modeReason ?? 'no exec gate'})`
          : '';
    const kinds = p.errorsByKind ? errorKindsText(p.errorsByKind) : '';
    out.push(
      `placement: ${p.state}${p.reason ? ` (${p.reason})` : ''}${mode}${p.state === 'active' ? `, ${p.placed} placed of ${p.execs} execs, ${p.errors} errors${kinds ? ` (${kinds})` : ''}` : ''}`,
    );
  }
  // macOS counts the flow router's connections and their payload, not packets (RuleCounter)
  for (const r of s.rules ?? [])
    out.push(
      r.connections !== undefined
        ? `rule ${r.name} → ${r.target}: route ${r.route}, ${r.connections} connections, tx ${bytes(r.txBytes)}, rx ${bytes(r.rxBytes)} (payload)`
        : `rule ${r.name} → ${r.target}: route ${r.route}, tx ${r.txPackets} packets ${bytes(r.txBytes)}, rx ${r.rxPackets} packets ${bytes(r.rxBytes)}`,
      ...ruleSetLines(r),
    );
  for (const l of s.limits ?? [])
    out.push(
      `limit process ${l.pid} (${l.name}): ${limitRates(l)}, ${l.processes} process${l.processes === 1 ? '' : 'es'} in ${l.group}, since ${l.since}`,
    );
  return out;
}

const exitOf = (s: StatusResponse) => (s.state === 'converged' ? 0 : 2);

async function statusViaDaemon(io: Io, o: StatusOptions, c: DaemonClient): Promise<number> {
  try {
    const s = await c.status();
    io.out(o.json ? JSON.stringify(statusDocument(s), null, 2) + '\n' : renderDaemonStatus(s));
    return exitOf(s);
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}

function stopSignals(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

const RECENT = 10;

/**
 * `awg status --watch`: the status, re-fetched after every event. On a terminal the view is
 * redrawn in place with the last events under it; otherwise (a pipe, journald) plain lines:
 * the status once, then each event, and the headline again when it changes. `--json`: one
 * status document per line, each time it changes. When the daemon goes away the terminal view
 * says so above the last status (plain mode: a `service unavailable` line; --json: on
 * stderr), reconnects with backoff and, when it is back, re-reads the status (plain mode
 * prints it whole again). Ends on SIGINT/SIGTERM (exit 0), or with `--no-reconnect` when
 * the daemon goes away (exit 6).
 */
async function watchStatus(
  io: Io,
  o: StatusOptions,
  first: DaemonClient,
  deps: WatchDeps,
): Promise<number> {
  const tty = deps.tty ?? Boolean(process.stdout.isTTY);
  const reconnect = o.reconnect !== false;
  const recent: DaemonEvent[] = [];
  let client = first;
  let lastId = '';
  let last = '';
  let lastHeadline = '';
  let lastStatus: StatusResponse | undefined;
  /** while the daemon is away: the line the terminal view shows above the last status */
  let away: string | undefined;
  let fetching: Promise<void> | undefined;
  let again = false;
  let failure: unknown;
  const draw = () => {
    io.out(
      '\x1b[H\x1b[2J' +
        (away ? `${away}\n\n` : '') +
        (lastStatus ? renderDaemonStatus(lastStatus) : '') +
        (recent.length
          ? '\nrecent events:\n' + recent.map((e) => `  ${e.at} ${formatEvent(e)}\n`).join('')
          : ''),
    );
  };
  const show = (s: StatusResponse) => {
    lastStatus = s;
    if (o.json) {
      const line = JSON.stringify(statusDocument(s));
      if (line !== last) io.out(line + '\n');
      last = line;
    } else if (tty) {
      draw();
    } else {
      const h = statusHeadline(s);
      if (!lastHeadline) io.out(renderDaemonStatus(s));
      else if (h !== lastHeadline) io.out(h + '\n');
      lastHeadline = h;
    }
  };
  const refresh = (): Promise<void> => {
    if (fetching) {
      again = true;
      return fetching;
    }
    fetching = (async () => {
      do {
        again = false;
        try {
          show(await client.status());
        } catch (e) {
          // the daemon went away under the read: the stream ends too, and follow decides
          if (!(reconnect && isUnavailable(e))) failure ??= e;
        }
      } while (again);
      fetching = undefined;
    })();
    return fetching;
  };
  const onService = (c: ServiceChange) => {
    const text = `${c.at} ${serviceText(c)}`;
    if (o.json) io.err(text + '\n');
    else if (!tty) io.out(text + '\n');
    if (c.state === 'unavailable') {
      away = `daemon unavailable — reconnecting (${c.reason}; since ${c.at})`;
      if (tty && !o.json) draw();
    } else {
      away = undefined;
      // plain mode prints the whole view again: the daemon that answers now may be another
      lastHeadline = '';
    }
  };
  const err = await follow({
    client: first,
    start: async (c, end) => {
      client = c;
      const unsub = await c.watch(
        (e, id) => {
          if (id) lastId = id;
          if (!o.json && !tty) io.out(`${e.at} ${formatEvent(e)}\n`);
          recent.push(e);
          if (recent.length > RECENT) recent.shift();
          // every event re-reads the status; a `gap` (events lost) most of all
          void refresh();
        },
        end,
        lastId ? { after: lastId } : {},
      );
      await refresh();
      return unsub;
    },
    onService,
    until: deps.until ?? stopSignals(),
    reconnect,
    closed: 'the daemon closed the event stream',
    ...(deps.reconnect ? { deps: deps.reconnect } : {}),
  });
  await fetching;
  const e = err ?? (failure === undefined ? undefined : toAwgError(failure, 'driver'));
  if (e) {
    printError(io, e);
    return e.exitCode;
  }
  return 0;
}

/** Write `record` to `file` for `awg diff --observed` elsewhere (owner-only: it names the host's objects). */
async function writeObservation(io: Io, file: string, record: ObservationRecord): Promise<void> {
  const [{ writeFileAtomicSync }, { resolve }] = await Promise.all([
    import('../../util/files.js'),
    import('node:path'),
  ]);
  writeFileAtomicSync(resolve(file), JSON.stringify(record, null, 1) + '\n', { mode: 0o600 });
  io.err(`recorded the observation in ${file}\n`);
}
