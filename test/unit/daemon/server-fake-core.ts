/**
 * An in-memory DaemonCore for API tests: canned answers, recorded calls, injected events.
 * The canned documents are in server-samples.ts and server-sample-events.ts; they are
 * exported here too, so that a test imports the double and its samples from one place.
 */
import type {
  ApplyRequest,
  ApplyResponse,
  DaemonCore,
  DaemonEvent,
  ExplainDocument,
  ExplainRequest,
  LimitCaller,
  LimitInfo,
  LimitRequest,
  LimitResponse,
  ObservationRecord,
  ProcessInfo,
  StatusResponse,
  TopDocument,
  TopRequest,
  UpdateListsResponse,
} from '../../../src/daemon/core.js';
import type { AwgError } from '../../../src/errors.js';
import type { ExecChoice } from '../../../src/model/match.js';
import {
  sampleExplanation,
  sampleObservation,
  samplePlan,
  sampleStatus,
} from './server-samples.js';

export { ALL_EVENTS } from './server-sample-events.js';
export {
  PEER_PUB,
  SECRET_KEY,
  sampleExplanation,
  sampleObservation,
  samplePlan,
  sampleStatus,
  sampleTop,
} from './server-samples.js';

export class FakeCore implements DaemonCore {
  readonly calls: { method: string; arg?: unknown }[] = [];
  private readonly listeners = new Set<(e: DaemonEvent, id: string) => void>();
  /** set to make the next call of that method throw */
  fail: Partial<
    Record<
      | 'apply'
      | 'diff'
      | 'status'
      | 'observation'
      | 'down'
      | 'confirm'
      | 'listProcesses'
      | 'routeExec'
      | 'limit'
      | 'listLimits'
      | 'explain'
      | 'updateLists',
      unknown
    >
  > = {};
  /** live awg exec registrations: the pid, the choice, and how the daemon would end one */
  readonly execs = new Map<number, { choice: ExecChoice; end(reason: string): void }>();
  statusValue: StatusResponse = sampleStatus();
  observationValue: ObservationRecord = sampleObservation();
  applyValue: ApplyResponse = { outcome: 'converged', plan: samplePlan(), mutations: 4 };
  diffValue = { plan: samplePlan(), changes: true };
  downValue = { removed: ['link/awg-work', 'route/52001/0.0.0.0/0'], mutations: 2 };
  confirmValue = { confirmed: true };
  processes: ProcessInfo[] = [
    {
      pid: 4242,
      name: 'firefox',
      path: '/usr/lib/firefox/firefox',
      rule: 'browsers',
      target: 'work',
      route: 'work',
      limit: { pid: 4242, upload: 2_000_000, download: 1_000_000 },
    },
    {
      pid: 4243,
      name: 'firefox',
      path: '/usr/lib/firefox/firefox',
      rule: 'browsers',
      target: 'work',
      route: 'work',
      limit: { pid: 4242, download: 1_000_000 },
    },
    { pid: 1, name: 'systemd', path: '/usr/lib/systemd/systemd', route: 'direct' },
  ];

  private check(m: keyof FakeCore['fail']): void {
    const f = this.fail[m];
    if (f !== undefined) {
      delete this.fail[m];
      throw f;
    }
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  emit(e: DaemonEvent): void {
    for (const l of this.listeners) l(e, '');
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    this.calls.push({ method: 'apply', arg: req });
    this.check('apply');
    const r = { ...this.applyValue };
    if (req.dryRun) r.outcome = 'planned';
    if (req.confirmTimeoutSec)
      r.confirmDeadline = new Date(
        Date.parse('2026-11-22T05:00:00.000Z') + req.confirmTimeoutSec * 1000,
      ).toISOString();
    return r;
  }
  async diff(req: { configPath: string }) {
    this.calls.push({ method: 'diff', arg: req });
    this.check('diff');
    return this.diffValue;
  }
  async status(): Promise<StatusResponse> {
    this.calls.push({ method: 'status' });
    this.check('status');
    return this.statusValue;
  }
  async observation(): Promise<ObservationRecord> {
    this.calls.push({ method: 'observation' });
    this.check('observation');
    return this.observationValue;
  }
  async down() {
    this.calls.push({ method: 'down' });
    this.check('down');
    return this.downValue;
  }
  async confirm() {
    this.calls.push({ method: 'confirm' });
    this.check('confirm');
    return this.confirmValue;
  }
  async listProcesses(): Promise<ProcessInfo[]> {
    this.calls.push({ method: 'listProcesses' });
    this.check('listProcesses');
    return this.processes;
  }
  limits: LimitInfo[] = [];
  async limit(req: LimitRequest, caller?: LimitCaller): Promise<LimitResponse> {
    this.calls.push({ method: 'limit', arg: { req, caller } });
    this.check('limit');
    this.limits = this.limits.filter((l) => l.pid !== req.pid);
    if (req.clear) return { changed: true };
    const limit: LimitInfo = {
      pid: req.pid,
      ...(req.upload !== undefined ? { upload: req.upload } : {}),
      ...(req.download !== undefined ? { download: req.download } : {}),
      group: `awg/_limit-${req.pid}`,
      name: 'curl',
      path: '/usr/bin/curl',
      uid: caller?.uid ?? 0,
      since: '2026-11-22T05:00:00.000Z',
      processes: 1,
    };
    this.limits.push(limit);
    return { limit, changed: true };
  }
  explainValue: ExplainDocument = sampleExplanation();
  async explain(req: ExplainRequest): Promise<ExplainDocument> {
    this.calls.push({ method: 'explain', arg: req });
    this.check('explain');
    return { ...this.explainValue, pid: req.pid };
  }
  async listLimits(): Promise<LimitInfo[]> {
    this.calls.push({ method: 'listLimits' });
    this.check('listLimits');
    return this.limits;
  }
  updateListsValue: UpdateListsResponse = { results: [], lists: [] };
  async updateLists(req: { list?: string | undefined }): Promise<UpdateListsResponse> {
    this.calls.push({ method: 'updateLists', arg: req });
    this.check('updateLists');
    return this.updateListsValue;
  }
  async routeExec(
    pid: number,
    choice: ExecChoice,
    onEnd: (reason: string) => void,
  ): Promise<() => void> {
    this.calls.push({ method: 'routeExec', arg: { pid, choice } });
    this.check('routeExec');
    this.execs.set(pid, {
      choice,
      end: (reason) => {
        this.execs.delete(pid);
        onEnd(reason);
      },
    });
    return () => {
      this.calls.push({ method: 'exec-ended', arg: { pid } });
      this.execs.delete(pid);
    };
  }
  subscribe(listener: (e: DaemonEvent, id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** live Top subscriptions */
  readonly tops = new Set<{
    req: TopRequest;
    listener: (d: TopDocument) => void;
    onEnd: (err?: AwgError) => void;
  }>();
  top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    this.calls.push({ method: 'top', arg: req });
    const t = { req, listener, onEnd };
    this.tops.add(t);
    return () => {
      this.calls.push({ method: 'top-ended' });
      this.tops.delete(t);
    };
  }
  /** a document to every Top subscriber */
  pushTop(d: TopDocument): void {
    for (const t of this.tops) t.listener(d);
  }
  /** the daemon ends every Top call (with an error, or as when it stops) */
  endTops(err?: AwgError): void {
    const all = [...this.tops];
    this.tops.clear();
    for (const t of all) t.onEnd(err);
  }
}
