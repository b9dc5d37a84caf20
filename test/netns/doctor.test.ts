/**
 * `awg doctor` against a real kernel: in a namespace of its own, a wireguard-go link (a TUN
 * not ours) holding a default route in wg-quick's table with wg-quick's fwmark rule, and
 * another VPN's nft table. Doctor names all three and exits 2 (routes and rules read over
 * netlink: an `ip` that cannot list them changes nothing); with them gone it exits 0.
 * Read-only: the namespace is unchanged afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  fakeTool,
  makeAwgEnv,
  show,
  which,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  snapshotNetns,
  sweepStaleNetns,
} from '../helpers/netns.js';
import { startWireguardGo, type WgGo } from './interop-wg.js';
import type { DoctorReport } from '../../src/model/doctor.js';

const skip = requireNetnsPrereqs(['wireguard-go', 'nft']);
/** wireguard-go's UAPI socket lives in the host-wide /var/run/wireguard: a name of this run's own */
const WG = `lfcdoc${process.pid % 100000}`;

describe.skipIf(skip)('awg doctor in a namespace (real kernel)', () => {
  let ns = '';
  let e: AwgEnv | undefined;
  let wg: WgGo | undefined;

  beforeAll(async () => {
    await sweepStaleNetns();
    await ensureDist();
    ns = await createNetns('lfc-doctor');
    e = makeAwgEnv();
    wg = await startWireguardGo(ns, WG);
    // what `wg-quick up` leaves with `AllowedIPs = 0.0.0.0/0`
    await nsExec(ns, 'ip', ['addr', 'add', '10.200.241.2/24', 'dev', WG]);
    await nsExec(ns, 'ip', ['link', 'set', WG, 'up']);
    await nsExec(ns, 'ip', ['route', 'add', 'default', 'dev', WG, 'table', '51820']);
    await nsExec(ns, 'ip', [
      'rule',
      'add',
      'not',
      'fwmark',
      '0xca6c',
      'table',
      '51820',
      'priority',
      '32764',
    ]);
    await nsExec(ns, 'nft', ['add', 'table', 'inet', 'mullvad']);
    await nsExec(ns, 'nft', [
      'add',
      'chain',
      'inet',
      'mullvad',
      'output',
      '{ type filter hook output priority 0; }',
    ]);
  }, 60_000);
  afterAll(async () => {
    await wg?.stop?.();
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
  });

  it('names the foreign default route, its fwmark rule and the foreign nft table; exit 2; changes nothing', async () => {
    const before = await snapshotNetns(ns);
    const r = await awg(ns, e!, ['doctor', '--json', '--state-dir', e!.stateDir]);
    expect(r.code, show(r)).toBe(2);
    const report = r.json<DoctorReport>();
    const got = report.findings.map((f) => `${f.severity} ${f.id} ${f.subject}`);
    expect(got).toContain(`error foreign-default-route ${WG}`);
    expect(got).toContain('warning foreign-fwmark-rule rule 32764');
    expect(got).toContain('warning foreign-firewall nft table inet mullvad');
    const route = report.findings.find((f) => f.id === 'foreign-default-route')!;
    expect(route.what).toBe(
      `tun link ${WG} (not awg's) holds a default route (default in table 51820): traffic awg sends direct may leave through it, and its endpoint route fights awg's`,
    );
    // no systemd as PID 1 in this test bed: those checks are named as skipped, not guessed
    expect(report.skipped.join('\n')).toMatch(/wg-quick-unit.*systemd is not running/);
    expect(await snapshotNetns(ns)).toEqual(before);

    const text = await awg(ns, e!, ['doctor', '--state-dir', e!.stateDir]);
    expect(text.code).toBe(2);
    expect(text.stdout).toMatch(new RegExp(`^error {3}foreign-default-route ${WG}: `, 'm'));
    expect(text.stdout).toMatch(/^ {8}fix: take that tunnel down/m);
  });

  it('reads routes and rules over netlink in its own process: an `ip` that cannot list them changes nothing', async () => {
    const bin = join(e!.dir, 'bin');
    mkdirSync(bin, { recursive: true });
    fakeTool(
      bin,
      'ip',
      `for a in "$@"; do case "$a" in route|rule) echo "ip: injected failure" >&2; exit 1;; esac; done\nexec ${which('ip')} "$@"`,
    );
    const r = await awg(ns, e!, ['doctor', '--json', '--state-dir', e!.stateDir], {
      pathPrepend: bin,
    });
    expect(r.code, show(r)).toBe(2);
    const got = r.json<DoctorReport>().findings.map((f) => `${f.id} ${f.subject}`);
    expect(got).toContain(`foreign-default-route ${WG}`);
    expect(got).toContain('foreign-fwmark-rule rule 32764');
  });

  it('with the other tunnel and table gone: exit 0', async () => {
    await nsExec(ns, 'ip', ['rule', 'del', 'priority', '32764']);
    await nsExec(ns, 'ip', ['link', 'del', WG]);
    await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'mullvad']);
    const r = await awg(ns, e!, ['doctor', '--json', '--state-dir', e!.stateDir]);
    expect(r.json<DoctorReport>().findings, show(r)).toEqual([]);
    expect(r.code).toBe(0);
  });
});
