/**
 * A DNS stub hosted alone, for test/netns/domain-rules.test.ts: started inside the client
 * namespace (nsenter) with the kernel-backed dependencies, configured by argv[2] (JSON:
 * port, table, rules [{rule, names, wildcards, v4, v6}], marks, minTtl, tickMs). Prints
 * `ready`; SIGUSR1 resyncs (prints `resynced`), SIGUSR2 prints the stats as one JSON line.
 */
import { domainSetOf } from '../../src/config/lists.js';
import { linuxStubDeps } from '../../src/resources/dns-stub/linux.js';
import { DnsStub } from '../../src/resources/dns-stub/stub.js';

interface DriverRule {
  rule: string;
  names: string[];
  wildcards?: string[];
  v4?: string;
  v6?: string;
}
const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  port: number;
  table: string;
  rules: DriverRule[];
  fwmarkMask: number;
  bypassMark: number;
  minTtl?: number;
  tickMs?: number;
  tunnelPort?: number;
  tunnelResolvers?: { mark: number; v4?: string; v6?: string }[];
};

const deps = linuxStubDeps();
const stub = new DnsStub({ ...deps, tickMs: cfg.tickMs ?? 500 });
await stub.start({
  port: cfg.port,
  tunnelPort: cfg.tunnelPort,
  tunnelResolvers: cfg.tunnelResolvers,
  table: cfg.table,
  fwmarkMask: cfg.fwmarkMask,
  bypassMark: cfg.bypassMark,
  minTtl: cfg.minTtl,
  rules: cfg.rules.map((r) => ({
    rule: r.rule,
    domains: domainSetOf([...r.names, ...(r.wildcards ?? []).map((w) => `*.${w}`)]),
    sets: { v4: r.v4, v6: r.v6 },
  })),
});
process.stdout.write('ready\n');
// stdin is not ours (nsSpawn): commands are signals
process.on('SIGUSR1', () => void stub.resync().then(() => process.stdout.write('resynced\n')));
process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify(stub.stats())}\n`));
process.on('SIGTERM', () => {
  stub.stop();
  deps.close();
  process.exit(0);
});
