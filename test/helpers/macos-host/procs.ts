/**
 * A macOS process table (procs/darwin.ts ProcTable: what libproc answers) fed from a captured
 * `ps -ef` (test/fixtures/macos/process/ps-ef-10.14.6-jc-EXCERPT.txt). ps prints the command
 * line; proc_pidpath gives the executable alone, read here as: inside an app bundle
 * (`…/X.app/Contents/MacOS/…`) the executable named like the bundle if the line continues
 * with that name, else the first word after `MacOS/`; elsewhere the first word. comm is the
 * path's last component cut at MAXCOMLEN (16), as the kernel's p_comm. `gone` pids answer
 * undefined (the process exited between proc_listallpids and the next call).
 */
import type { ProcTable } from '../../../src/procs/darwin.js';
import { capture } from './model.js';

export interface PsRow {
  uid: number;
  pid: number;
  ppid: number;
  path: string;
}

const ROW = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\S+\s+\S+\s+\S+\s(.+)$/;

export function executableOf(cmd: string): string {
  const m = /^(.*\/([^/]+)\.app\/Contents\/MacOS\/)(.*)$/.exec(cmd);
  if (!m) return cmd.split(' ')[0]!;
  const [, dir, bundle, rest] = m;
  return dir! + (rest!.startsWith(bundle!) ? bundle! : rest!.split(' ')[0]!);
}

export function parsePsEf(text: string): PsRow[] {
  return text
    .split('\n')
    .slice(1)
    .flatMap((l) => {
      const m = ROW.exec(l);
      return m
        ? [{ uid: Number(m[1]), pid: Number(m[2]), ppid: Number(m[3]), path: executableOf(m[4]!) }]
        : [];
    });
}

export const PS_EF = 'process/ps-ef-10.14.6-jc-EXCERPT.txt';

export function capturedProcTable(
  o: { rows?: PsRow[]; gone?: ReadonlySet<number> } = {},
): ProcTable & { rows: PsRow[] } {
  const rows = o.rows ?? parsePsEf(capture(PS_EF));
  const by = new Map(rows.map((r) => [r.pid, r]));
  const live = (pid: number) => (o.gone?.has(pid) ? undefined : by.get(pid));
  return {
    rows,
    pids: () => rows.map((r) => r.pid),
    path: (pid) => live(pid)?.path,
    info: (pid) => {
      const r = live(pid);
      return r
        ? { ppid: r.ppid, comm: r.path.slice(r.path.lastIndexOf('/') + 1).slice(0, 16), uid: r.uid }
        : undefined;
    },
  };
}
