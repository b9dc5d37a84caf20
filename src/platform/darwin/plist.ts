/** launchd property list for the awg daemon (XML plist 1.0). Pure; golden-tested. */
import { DAEMON_LABEL } from './launchctl.js';

export interface DaemonPlistOptions {
  label?: string;
  /** absolute argv: node binary, awg entry, `daemon`, flags */
  programArguments: string[];
  stdoutPath?: string;
  stderrPath?: string;
  environment?: Record<string, string>;
  workingDirectory?: string;
}

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

const str = (s: string) => `<string>${esc(s)}</string>`;

const HEAD = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
  '<plist version="1.0">',
  '<dict>',
];

function job(label: string, programArguments: string[], keys: string[]): string {
  if (!programArguments.length) throw new Error('programArguments must not be empty');
  return [
    ...HEAD,
    '\t<key>Label</key>',
    `\t${str(label)}`,
    '\t<key>ProgramArguments</key>',
    '\t<array>',
    ...programArguments.map((a) => `\t\t${str(a)}`),
    '\t</array>',
    ...keys,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

/**
 * RunAtLoad + KeepAlive: launchd restarts the daemon after a crash; the PF anchor stays
 * loaded meanwhile (fail-closed). ProcessType Interactive avoids background throttling of
 * the packet path.
 */
export function renderDaemonPlist(o: DaemonPlistOptions): string {
  const l: string[] = [
    '\t<key>RunAtLoad</key>',
    '\t<true/>',
    '\t<key>KeepAlive</key>',
    '\t<true/>',
    '\t<key>ProcessType</key>',
    '\t<string>Interactive</string>',
  ];
  if (o.workingDirectory) l.push('\t<key>WorkingDirectory</key>', `\t${str(o.workingDirectory)}`);
  if (o.environment && Object.keys(o.environment).length) {
    l.push('\t<key>EnvironmentVariables</key>', '\t<dict>');
    for (const [k, v] of Object.entries(o.environment).sort(([a], [b]) => a.localeCompare(b)))
      l.push(`\t\t<key>${esc(k)}</key>`, `\t\t${str(v)}`);
    l.push('\t</dict>');
  }
  if (o.stdoutPath) l.push('\t<key>StandardOutPath</key>', `\t${str(o.stdoutPath)}`);
  if (o.stderrPath) l.push('\t<key>StandardErrorPath</key>', `\t${str(o.stderrPath)}`);
  return job(o.label ?? DAEMON_LABEL, o.programArguments, l);
}

/**
 * The boot kill switch (pf-boot.ts): run once when launchd loads it at boot (RunAtLoad,
 * LaunchOnlyOnce: never again until the next boot, not even when its program exits), no
 * KeepAlive; its stderr (pfctl's `-E` token) to `stderrPath`.
 */
export function renderKillSwitchPlist(o: {
  label: string;
  programArguments: string[];
  stderrPath: string;
}): string {
  return job(o.label, o.programArguments, [
    '\t<key>RunAtLoad</key>',
    '\t<true/>',
    '\t<key>LaunchOnlyOnce</key>',
    '\t<true/>',
    '\t<key>StandardErrorPath</key>',
    `\t${str(o.stderrPath)}`,
  ]);
}

const unesc = (s: string) =>
  s.replace(
    /&(lt|gt|quot|apos|amp);/g,
    (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]!,
  );

/**
 * ProgramArguments of an XML plist: the `<string>`s of the array after
 * `<key>ProgramArguments</key>`. Undefined when there is none or it holds anything but
 * strings (a binary plist, or one edited into a form renderDaemonPlist never writes).
 */
export function plistProgramArguments(text: string): string[] | undefined {
  const m = /<key>ProgramArguments<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(text);
  if (!m) return undefined;
  const body = m[1]!;
  const items = [...body.matchAll(/<string>([^<]*)<\/string>/g)].map((x) => unesc(x[1]!));
  if (body.replace(/<string>[^<]*<\/string>/g, '').trim() !== '') return undefined;
  return items;
}
