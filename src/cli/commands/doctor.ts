/**
 * `awg doctor`: name what on this host may fight awg (another VPN's link, rules or firewall,
 * wg-quick units, NetworkManager taking our links or running its own VPN, resolved against
 * resolv.conf, our units not enabled), each with what to do. The host is observed by the
 * platform (resources/platform/linux-doctor.ts) and judged by model/doctor.ts. Read-only.
 * Exit 0 nothing found, 2 findings, 1 error (like diff).
 */
import { resolve } from 'node:path';
import { hasErrors, loadConfigFile } from '../../config/load.js';
import { killSwitchOf } from '../../config/schema.js';
import { AwgError, toAwgError } from '../../errors.js';
import { diagnose, type DoctorObservation, type DoctorReport } from '../../model/doctor.js';
import { AppliedStore } from '../../pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../pipeline/claims.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { loadPlatform } from '../../resources/registry.js';
import { ProcessExec, type Exec } from '../../util/exec.js';
import { silentReporter } from '../../util/reporter.js';
import { FileStateStore } from '../../util/state.js';
import { safeLine } from '../../util/sanitize.js';
import { printError, printIssues, type Io } from '../output.js';

export interface DoctorOptions {
  /** the config to check the host against (default: the file of the last apply) */
  file?: string;
  stateDir?: string;
  json?: boolean;
}

export async function doctorCommand(
  io: Io,
  o: DoctorOptions,
  deps: { exec?: Exec } = {},
): Promise<number> {
  try {
    const platform = await loadPlatform();
    if (!platform.observeConflicts)
      throw new AwgError('unsupported', `awg doctor has no checks for ${platform.os} yet`);
    const last = new AppliedStore(new FileStateStore(stateDirFrom(o.stateDir))).load();
    const notes: string[] = [];
    let config: DoctorObservation['config'];
    const file = o.file ? resolve(o.file) : last?.configFile;
    if (file) {
      const r = await loadConfigFile(file);
      if (r.config && !hasErrors(r.issues))
        config = {
          file,
          killSwitch: killSwitchOf(r.config).enabled,
          dnsSystem: r.config.dns.system,
        };
      else if (o.file) {
        printIssues(io, r.issues);
        return 1;
      } else notes.push(`the last applied config ${file} does not load: its checks are skipped`);
    }
    const claims = last?.claims ?? DEFAULT_CLAIMS;
    const observed = await platform.observeConflicts({
      exec: deps.exec ?? new ProcessExec(silentReporter),
      claims: {
        linkPrefix: claims.linkPrefix,
        routeProtocol: claims.routeProtocol,
        rulePriority: claims.rulePriority,
      },
      ...(config ? { config } : {}),
    });
    const report = diagnose(observed);
    if (!config)
      report.skipped.push(
        'killswitch-unit-disabled, resolved-bypassed: no config (-f FILE, or an applied one)',
      );
    report.skipped.push(...notes);
    io.out(
      o.json
        ? JSON.stringify({ ...report, ...(config ? { config: config.file } : {}) }, null, 2) + '\n'
        : text(report),
    );
    return report.findings.length ? 2 : 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode === 2 ? 1 : err.exitCode;
  }
}

function text(r: DoctorReport): string {
  const lines: string[] = [];
  for (const f of r.findings) {
    lines.push(`${f.severity.padEnd(7)} ${f.id} ${f.subject}: ${f.what}`);
    lines.push(`        fix: ${f.fix}`);
  }
  for (const s of r.skipped) lines.push(`skipped ${s}`);
  lines.push(
    r.findings.length
      ? `${r.findings.length} finding(s): ${['error', 'warning', 'info']
          .map((s) => [s, r.findings.filter((f) => f.severity === s).length] as const)
          .filter(([, n]) => n > 0)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ')}`
      : 'nothing on this host competes with awg',
  );
  return lines.map((l) => safeLine(l)).join('\n') + '\n';
}
