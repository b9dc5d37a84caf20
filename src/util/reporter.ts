/**
 * Drivers and the reconcile loop print nothing themselves: everything the user may see goes
 * through one Reporter (text on a terminal, JSON lines, or the daemon's event stream).
 */
export type ReportEvent =
  | { type: 'mutation'; command: string }
  | { type: 'phase'; phase: string; detail?: string }
  | { type: 'warning'; message: string }
  | { type: 'info'; message: string };

export interface Reporter {
  report(e: ReportEvent): void;
}

export const silentReporter: Reporter = { report() {} };

/** Collects events; handy in tests and for counting mutations. */
export class MemoryReporter implements Reporter {
  readonly events: ReportEvent[] = [];
  report(e: ReportEvent): void {
    this.events.push(e);
  }
  get mutations(): string[] {
    return this.events.flatMap((e) => (e.type === 'mutation' ? [e.command] : []));
  }
}

export class TeeReporter implements Reporter {
  constructor(private readonly targets: Reporter[]) {}
  report(e: ReportEvent): void {
    for (const t of this.targets) t.report(e);
  }
}
