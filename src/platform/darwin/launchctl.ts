/**
 * launchctl(1) `print`/`list` parsing, error mapping, and command lines. Pure.
 *
 * Failures print `<Verb> failed: <errno>: <strerror>` on stderr and exit with that errno:
 * `Boot-out failed: 3: No such process` (not loaded), `Bootstrap failed: 5: Input/output
 * error` (already loaded, or a bad/unowned plist — launchd does not say which),
 * `Boot-out failed: 2: No such file or directory` (plist path missing). `print` of an
 * unknown label exits 113 with `Could not find service "<label>" in domain for …`.
 * Usage errors exit 64.
 */

export interface LaunchctlPrint {
  /** first line before ` = {`: `system/com.awg.daemon`, or the bare label on 10.10 */
  target: string;
  state?: string;
  jobState?: string;
  pid?: number;
  /** number, or `never` for `(never exited)` */
  lastExitCode?: number | 'never';
  lastExitReason?: string;
  path?: string;
  program?: string;
  type?: string;
  runs?: number;
  properties: string[];
  fields: Record<string, string>;
}

/** Top-level `key = value` fields of `launchctl print <service-target>`; nested blocks are skipped. */
export function parseLaunchctlPrint(text: string): LaunchctlPrint | undefined {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const start = lines.findIndex((l) => /^\S.* = \{$/.test(l));
  if (start < 0) return undefined;
  const target = lines[start]!.replace(/ = \{$/, '');
  const fields: Record<string, string> = {};
  let depth = 0;
  for (const l of lines.slice(start + 1)) {
    const t = l.trim();
    if (depth === 0 && t === '}') break;
    if (t.endsWith('{')) {
      depth++;
      continue;
    }
    if (t === '}') {
      depth--;
      continue;
    }
    if (depth > 0) continue;
    const m = /^(.+?) = (.*)$/.exec(t);
    if (m) fields[m[1]!] = m[2]!;
  }
  const p: LaunchctlPrint = {
    target,
    properties: (fields['properties'] ?? '')
      .split('|')
      .map((s) => s.trim())
      .filter(Boolean),
    fields,
  };
  if (fields['state']) p.state = fields['state'];
  if (fields['job state']) p.jobState = fields['job state'];
  if (fields['pid'] && /^\d+$/.test(fields['pid'])) p.pid = Number(fields['pid']);
  const lec = fields['last exit code'];
  if (lec !== undefined) {
    if (lec === '(never exited)') p.lastExitCode = 'never';
    else {
      const m = /^(-?\d+)(?::\s*(.+))?$/.exec(lec);
      if (m) {
        p.lastExitCode = Number(m[1]);
        if (m[2]) p.lastExitReason = m[2];
      }
    }
  }
  if (fields['path']) p.path = fields['path'];
  if (fields['program']) p.program = fields['program'];
  if (fields['type']) p.type = fields['type'];
  if (fields['runs'] && /^\d+$/.test(fields['runs'])) p.runs = Number(fields['runs']);
  return p;
}

export interface LaunchctlListEntry {
  pid?: number;
  status: number;
  label: string;
}

/** `launchctl list`: TAB-separated PID (`-` when not running), last exit status, label. */
export function parseLaunchctlList(text: string): LaunchctlListEntry[] {
  const out: LaunchctlListEntry[] = [];
  for (const l of text.split('\n')) {
    const c = l.replace(/\r$/, '').split('\t');
    if (c.length !== 3 || c[0] === 'PID' || !/^-?\d+$/.test(c[1]!)) continue;
    const e: LaunchctlListEntry = { status: Number(c[1]), label: c[2]! };
    if (/^\d+$/.test(c[0]!)) e.pid = Number(c[0]);
    out.push(e);
  }
  return out;
}

export type LaunchctlOutcome =
  | { kind: 'ok' }
  | { kind: 'not-loaded'; message: string }
  | { kind: 'io-error'; message: string }
  | { kind: 'no-such-file'; message: string }
  | { kind: 'usage'; message: string }
  | { kind: 'disabled'; message: string }
  | { kind: 'error'; errno?: number; message: string };

/** Map a launchctl exit code + stderr to a typed outcome (bootstrap, bootout, kickstart, print). */
export function classifyLaunchctl(code: number, stderr: string, stdout = ''): LaunchctlOutcome {
  const text = `${stderr}\n${stdout}`.trim();
  const failed = /(?:Boot-out|Bootstrap|Load|Unload|Kickstart) failed: (\d+): (.+)/.exec(text);
  if (code === 0 && !failed) return { kind: 'ok' };
  const message = failed
    ? `${failed[2]!.trim()}`
    : text.split('\n').filter(Boolean).slice(0, 3).join(' ');
  const errno = failed ? Number(failed[1]) : code;
  if (/Could not find service/.test(text) || code === 113) return { kind: 'not-loaded', message };
  if (errno === 3 || /No such process/.test(message)) return { kind: 'not-loaded', message };
  // `Bootstrap failed: 119: Service is disabled` (a label switched off by `launchctl disable`;
  // DeterminateSystems/nix-installer#530)
  if (errno === 119 || /Service is disabled/.test(message)) return { kind: 'disabled', message };
  if (errno === 5 || /Input\/output error/.test(message)) return { kind: 'io-error', message };
  if (errno === 2 || /No such file or directory/.test(message))
    return { kind: 'no-such-file', message };
  if (code === 64 || /^Usage:|Unrecognized target specifier/m.test(text))
    return { kind: 'usage', message };
  return { kind: 'error', errno, message };
}

export const DAEMON_LABEL = 'com.awg.daemon';
export const LAUNCH_DAEMONS_DIR = '/Library/LaunchDaemons';

export function plistPath(label: string): string {
  return `${LAUNCH_DAEMONS_DIR}/${label}.plist`;
}

export const launchctlArgs = {
  bootstrap: (label: string) => ['bootstrap', 'system', plistPath(label)],
  /** by service target, not plist path: works when the plist file is already gone */
  bootout: (label: string) => ['bootout', `system/${label}`],
  kickstart: (label: string) => ['kickstart', '-k', `system/${label}`],
  print: (label: string) => ['print', `system/${label}`],
  printDisabled: () => ['print-disabled', 'system'],
  enable: (label: string) => ['enable', `system/${label}`],
};

/**
 * `launchctl print-disabled <domain>`: label → disabled, read from the `disabled services =
 * { … }` block only (other blocks, e.g. `login item associations`, map labels to bundle ids).
 * Lines read `"label" => disabled` / `=> enabled` since macOS 13 (usnistgov/macos_security#167:
 * Ventura changed it; DeterminateSystems/nix-installer#555 shows `print-disabled system`), and
 * `=> true` / `=> false` before (ninehills/blog#85, Monterey-era `print-disabled user/501`);
 * both are in test/fixtures/macos/launchd/launchctl-print-disabled-*.txt.
 * What this does NOT tell for certain: whether Background Task Management (System Settings →
 * Login Items, macOS 13+) holds the job back — no source says launchd reports that through
 * print-disabled; its state lives in the BTM store, read with `sfltool dumpbtm` (parseDumpBtm).
 */
export function parseLaunchctlDisabled(text: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  let inBlock = false;
  let sawHeader = false;
  for (const l of text.split('\n')) {
    const t = l.replace(/\r$/, '').trim();
    if (/ = \{$/.test(t)) {
      inBlock = t === 'disabled services = {';
      sawHeader = true;
      continue;
    }
    if (t === '}') {
      inBlock = false;
      continue;
    }
    if (sawHeader && !inBlock) continue;
    const m = /^"([^"]+)"\s*=>\s*(disabled|enabled|true|false)$/.exec(t);
    if (m) out.set(m[1]!, m[2] === 'disabled' || m[2] === 'true');
  }
  return out;
}

/**
 * One record of `sfltool dumpbtm` (macOS 13+, Background Task Management: what System
 * Settings → General → Login Items lists). Records start at a `#N:` line (or, in pasted
 * fragments, at `UUID:`); fields are `Key: value` lines right-aligned on the colon; nested
 * `#N: id` lines (embedded item identifiers) are not fields. `Disposition` is a bracketed
 * word list, `[enabled, allowed, visible, notified] (0xb)`; the record format is from a
 * verbatim paste of an app record (PostgresApp/PostgresApp#701,
 * test/fixtures/macos/launchd/sfltool-dumpbtm-app-record-postgresapp.txt) and the field list
 * of a published guide (majorshouse wiki "Auditing & Cleaning macOS Background App
 * Activity": `Type: legacy daemon (0x10010)` for /Library/LaunchDaemons plists, per-UID
 * `Records for UID N` sections). No capture of a LaunchDaemon record exists here.
 */
export interface BtmRecord {
  uid?: string;
  fields: Record<string, string>;
  /** the Disposition words, lower case */
  disposition: string[];
}

export function parseDumpBtm(text: string): BtmRecord[] {
  const out: BtmRecord[] = [];
  let uid: string | undefined;
  let cur: BtmRecord | undefined;
  const start = () => {
    cur = { ...(uid !== undefined ? { uid } : {}), fields: {}, disposition: [] };
    out.push(cur);
  };
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const t = raw.trim();
    const u = /^Records for UID (-?\d+)\b/.exec(t);
    if (u) {
      uid = u[1];
      cur = undefined;
      continue;
    }
    if (/^#\d+:$/.test(t)) {
      start();
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z .]*?):\s(.*)$/.exec(t);
    if (!kv) continue;
    const [, key, value] = kv as unknown as [string, string, string];
    if (key === 'UUID' && (!cur || cur.fields['UUID'] !== undefined)) start();
    if (!cur) continue;
    if (cur.fields[key] !== undefined) continue;
    cur.fields[key] = value.trim();
    if (key === 'Disposition') {
      const m = /^\[([^\]]*)\]/.exec(value.trim());
      if (m)
        cur.disposition = m[1]!
          .split(',')
          .map((w) => w.trim().toLowerCase())
          .filter(Boolean);
    }
  }
  return out;
}

/**
 * Does Background Task Management keep `label` (plist `plistFile`) from running? True when a
 * record for it — URL is the plist (a `file://` URL or a path) or Identifier is the label,
 * bare or with the `<type>.` prefix BTM puts in front (`16.` for daemons) — has `disallowed`
 * in its Disposition. Reading: Disposition's value is a bit set (`enabled` 0x1, `allowed`
 * 0x2, `notified` 0x8: `[enabled, allowed, notified] (0xb)`); `allowed` is the user's "Allow
 * in the Background" switch (SMAppService's `.requiresApproval` when off), while `disabled`
 * is common on app and developer records that run fine (the Postgres.app capture), so only
 * `disallowed` counts. An inference from published dumps and Apple's SMAppService states,
 * never observed for our label on a Mac.
 */
export function btmDisallows(records: BtmRecord[], label: string, plistFile: string): boolean {
  return records.some((r) => {
    if (!r.disposition.includes('disallowed')) return false;
    const url = r.fields['URL'];
    const path = url?.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
    const id = r.fields['Identifier'];
    return (
      path === plistFile ||
      id === label ||
      (id !== undefined && /^\d+\./.test(id) && id.slice(id.indexOf('.') + 1) === label)
    );
  });
}
