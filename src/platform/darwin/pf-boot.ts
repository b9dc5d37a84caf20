/**
 * The kill switch from boot on macOS (Linux: `awg-killswitch.service`). PF rules do not survive
 * a reboot, so with the kill switch on the firewall driver keeps two files in the state
 * directory, and the LaunchDaemon `com.awg.killswitch` (plist.ts renderKillSwitchPlist) loads
 * them at boot, before the daemon (a Node process) has started:
 *
 * - `killswitch-boot.pf.conf`: the main ruleset as the driver loads it (/etc/pf.conf as it was
 *   at apply, plus our `anchor "com.awg/*"` hook) and `load anchor "com.awg/<table>" from` …
 * - `killswitch-boot.anchor`: the kill switch with every tunnel macro unbound (no utun exists
 *   at boot), i.e. the anchor as it is before the first connect: everything blocked but
 *   loopback, the endpoints, DHCP/ND and (if allowed) the LAN.
 *
 * The job runs `pfctl -E -f <conf>` (BSD pfctl loads the rules before it enables, in one run)
 * only if the conf exists: after `awg down` or with the kill switch off it does nothing. Its
 * `-E` reference token goes to stderr, which launchd writes to `killswitch-boot.log`; the
 * driver releases that reference once its own reference, hook and anchor are in place (or on
 * `down`) and removes the log, so PF's enable count is the daemon's alone again.
 *
 * Pure: the texts and their parsers.
 */
import { ANCHOR_ROOT, bindPfLinks, renderMainRuleset } from './pf-render.js';

export const KILLSWITCH_LABEL = 'com.awg.killswitch';
export const BOOT_CONF_FILE = 'killswitch-boot.pf.conf';
export const BOOT_ANCHOR_FILE = 'killswitch-boot.anchor';
export const BOOT_LOG_FILE = 'killswitch-boot.log';

const HEADER =
  '# managed-by=awg: the kill switch loaded at boot by the LaunchDaemon com.awg.killswitch; written by awg apply, removed by awg down';

/** the job's argv: pfctl only when the conf is there (`$0` is the conf's path) */
export function bootJobArgv(stateDir: string): string[] {
  if (!stateDir.startsWith('/')) throw new Error(`stateDir must be an absolute path: ${stateDir}`);
  return [
    '/bin/sh',
    '-c',
    'test -f "$0" || exit 0; exec /sbin/pfctl -E -f "$0"',
    `${stateDir}/${BOOT_CONF_FILE}`,
  ];
}

const quoted = (s: string) => {
  if (/["\n]/.test(s)) throw new Error(`a path pf.conf cannot quote: ${JSON.stringify(s)}`);
  return `"${s}"`;
};

/** The main ruleset the job loads: /etc/pf.conf's text, our hook, and our anchor from its file. */
export function renderBootConf(pfConf: string, table: string, anchorFile: string): string {
  return `${HEADER}\n${renderMainRuleset(pfConf)}load anchor ${quoted(`${ANCHOR_ROOT}/${table}`)} from ${quoted(anchorFile)}\n`;
}

/** The anchor the job loads: `boot` (a rendered anchor) with every tunnel macro unbound. */
export function renderBootAnchor(table: string, boot: string): string {
  return `${HEADER}\n# anchor ${ANCHOR_ROOT}/${table}\n${bindPfLinks(boot, {}).text}`;
}

/** The table and rendered anchor a boot anchor file holds; undefined when it is not one we wrote. */
export function parseBootAnchor(text: string): { table: string; boot: string } | undefined {
  const m = new RegExp(
    `^${HEADER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n# anchor ${ANCHOR_ROOT}/([A-Za-z0-9_.-]+)\n`,
  ).exec(text);
  if (!m) return undefined;
  const body = text.slice(m[0].length).replace(/^# unbound [A-Za-z0-9_,]+: /gm, '');
  return { table: m[1]!, boot: body };
}

/** Whether a conf is one we wrote for `table` and `anchorFile` (its pf.conf part may be older than /etc/pf.conf). */
export function isOurBootConf(text: string, table: string, anchorFile: string): boolean {
  return (
    text.startsWith(`${HEADER}\n`) &&
    text.endsWith(`load anchor ${quoted(`${ANCHOR_ROOT}/${table}`)} from ${quoted(anchorFile)}\n`)
  );
}

/** The `-E` tokens the job's stderr holds (`Token : N`), oldest first (launchd appends). */
export function bootTokens(log: string): string[] {
  return [...log.matchAll(/^Token : (\d+)$/gm)].map((m) => m[1]!);
}
