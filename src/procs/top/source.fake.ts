/**
 * Test double (excluded from the build, tsconfig.build.json): a TrafficSource whose readings
 * a test writes. `steady` makes a process whose one TCP flow grows by fixed byte counts per
 * reading; `reads` counts the kernel reads the monitor made; reading after close() fails, as a
 * closed netlink socket would.
 */
import type { FlowReading, ProcessInfo, Reading, TrafficSource } from './reading.js';

export class FakeTrafficSource implements TrafficSource {
  reads = 0;
  closed = false;
  /** set to make the next read fail */
  failNext: Error | undefined;

  constructor(private readonly next: (n: number) => Reading) {}

  async read(): Promise<Reading> {
    if (this.closed) throw new Error('read after close');
    const f = this.failNext;
    this.failNext = undefined;
    if (f) throw f;
    return this.next(this.reads++);
  }

  close(): void {
    this.closed = true;
  }
}

export interface SteadyFlow {
  pid: number;
  name: string;
  /** cgroup relative to the v2 mount (`/awg/web`) */
  cgroup?: string;
  mark?: number;
  /** bytes added per reading */
  up: number;
  down: number;
}

/** readings 1 s apart (monotonic ms) in which each flow grew by its bytes */
export function steadySource(flows: SteadyFlow[]): FakeTrafficSource {
  return new FakeTrafficSource((n) => {
    const processes = new Map<number, ProcessInfo>(
      flows.map((f) => [
        f.pid,
        {
          pid: f.pid,
          name: f.name,
          exe: `/usr/bin/${f.name}`,
          ...(f.cgroup !== undefined ? { cgroup: f.cgroup } : {}),
        },
      ]),
    );
    const readings: FlowReading[] = flows.map((f, i) => ({
      key: `tcp/4/10.0.0.1:${40000 + i}/192.0.2.1:443/${f.pid}`,
      proto: 'tcp',
      family: 4,
      local: { addr: '10.0.0.1', port: 40000 + i },
      remote: { addr: '192.0.2.1', port: 443 },
      pid: f.pid,
      ...(f.cgroup !== undefined ? { cgroup: f.cgroup } : {}),
      ...(f.mark !== undefined ? { mark: f.mark } : {}),
      sent: f.up * n,
      received: f.down * n,
    }));
    return { at: n * 1000, flows: readings, processes, warnings: [] };
  });
}
