/**
 * A host without netbase (minimal and container images): no /etc/protocols, so nft lists
 * `meta l4proto { 6, 17 }` where awg rendered `{ tcp, udp }`; no /etc/services; and here no
 * /etc/iproute2 either. The real CLI runs in a private mount namespace where each is hidden
 * (an empty file or directory bind-mounted over it): a kill-switch config with a tunnel, DNS
 * leak protection and a per-app rule converges, a second apply is a no-op (`awg diff` exit 0),
 * and `awg down` restores the namespace. Before the normaliser canonicalised protocol values
 * (src/resources/firewall/normalise.ts), the load's read-back differed, the apply ended
 * "the kill switch could not be installed: traffic is NOT blocked".
 *
 * And any other read-back that differs from a table that did load (here: an `nft` wrapper that
 * lists the kill-switch rule under another comment) ends fail-closed: the table stays loaded
 * with its boot copy, and awg says traffic is blocked (reconciler/run.ts).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  fakeTool,
  makeAwgEnv,
  nftTable,
  show,
  snapshotHost,
  wgKeyPair,
  which,
  writeConfig,
  type AwgEnv,
  type AwgRunOptions,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { runProgram } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'unshare', 'mount']);

/**
 * the programs the rules match, named for this run (runProgram): never a real program of the
 * host (apt, firefox…) that a placer could move
 */
const APT = runProgram('awgt-apt');
const FIREFOX = runProgram('awgt-firefox');

/** hides $1 (an empty file) over /etc/protocols and /etc/services, $2 (an empty dir) over /etc/iproute2, then runs the rest */
const HIDE = `e=$1; d=$2; shift 2
for f in /etc/protocols /etc/services; do
  if [ -e "$f" ]; then mount --bind "$e" "$f" || exit 97; fi
done
if [ -e /etc/iproute2 ]; then mount --bind "$d" /etc/iproute2 || exit 97; fi
exec "$@"`;

function config(): string {
  const me = wgKeyPair();
  const peer = wgKeyPair();
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.2/32]
    dns: [10.200.50.1]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.60.0/24]
rules:
  - name: ff
    match: { name: ${FIREFOX} }
    target: vpn
default: vpn
dns: { leakProtection: true }
killSwitch: { enabled: true, allowLan: true }
`;
}

describe.skipIf(skip)('firewall read-back: a host without netbase, a listing that differs', () => {
  let ns: string;
  let peerNs: string;
  let e: AwgEnv;
  let hide: string[];
  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('nftm-nb');
    peerNs = await createNetns('nftm-nbp');
    await vethPair(ns, peerNs, { addrA: '10.200.9.1/24', addrB: '10.200.9.2/24' });
    e = makeAwgEnv();
    const empty = join(e.dir, 'empty');
    const emptyDir = join(e.dir, 'empty.d');
    writeFileSync(empty, '');
    mkdirSync(emptyDir);
    // unshare -m makes the mounts private: they end with the process and never reach the host
    hide = [
      'unshare',
      '-m',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      HIDE,
      'sh',
      empty,
      emptyDir,
    ];
  });
  afterEach(async () => {
    if (ns) await destroyNetns(ns);
    if (peerNs) await destroyNetns(peerNs);
    cleanupAwgEnv(e);
  });

  it('apply converges, a second apply and diff find nothing to do, down restores', async () => {
    const wrap: AwgRunOptions = { wrap: hide };
    const before = await snapshotHost(ns, e);
    const cfg = writeConfig(e, 'ks.yaml', config());

    const a = await awg(ns, e, ['apply', '-f', cfg], wrap);
    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toMatch(/verified/);
    expect(a.stderr).not.toMatch(/NOT blocked/);

    // the condition holds: nft in the same kind of namespace prints protocol numbers, and
    // the route and rule reads give the same numbers as with the files
    const listed = await nsExec(ns, hide[0]!, [
      ...hide.slice(1),
      'nft',
      'list',
      'table',
      'inet',
      'awg',
    ]);
    expect(listed.stdout).toMatch(/meta l4proto \{ 6, 17 \} th dport/);
    expect(listed.stdout).not.toMatch(/\{ tcp, udp \}/);
    for (const args of [
      ['-j', '-N', '-4', 'rule', 'show'],
      ['-j', '-N', '-4', 'route', 'show', 'table', 'all'],
    ])
      expect((await nsExec(ns, hide[0]!, [...hide.slice(1), 'ip', ...args])).stdout).toBe(
        (await nsExec(ns, 'ip', args)).stdout,
      );

    const again = await awg(ns, e, ['apply', '-f', cfg], wrap);
    expect(again.code, show(again)).toBe(0);
    expect(again.mutations).toEqual([]);
    const d = await awg(ns, e, ['diff', '-f', cfg], wrap);
    expect(d.code, show(d)).toBe(0);

    const down = await awg(ns, e, ['down'], wrap);
    expect(down.code, show(down)).toBe(0);
    expect(await snapshotHost(ns, e)).toEqual(before);
  });

  it('a table that loads but lists differently ends fail-closed: kept with its boot copy, never "NOT blocked"', async () => {
    const nft = which('nft');
    // every text listing shows the kill-switch rule under another comment than it was loaded with
    const bin = fakeTool(
      join(e.dir),
      'nft',
      `case " $* " in
  *" list ruleset "*|*" list table "*)
    out=$(${nft} "$@") || exit $?
    printf '%s\\n' "$out" | sed 's/comment "kill-switch"/comment "kill-switch-as-listed"/'
    exit 0 ;;
esac
exec ${nft} "$@"`,
    );
    const before = await snapshotHost(ns, e);
    const cfg = writeConfig(
      e,
      'ks.yaml',
      `version: 1\nkillSwitch: { enabled: true, allowLan: true }\nrules:\n  - name: upd\n    match: { name: ${APT} }\n    target: direct\n`,
    );
    const a = await awg(ns, e, ['apply', '-f', cfg], { pathPrepend: bin });
    expect(a.code, show(a)).toBe(7);
    expect(a.stderr).toMatch(/reads back differently/);
    expect(a.stderr).toContain('traffic is blocked (fail-closed)');
    expect(a.stderr).not.toMatch(/NOT blocked/);
    // the kernel holds the table as loaded, kill switch included, and a reboot would reload it
    const table = (await nftTable(ns, 'awg'))!;
    expect(table).toMatch(/counter packets \d+ bytes \d+ drop comment "kill-switch"/);
    expect(existsSync(join(e.stateDir, 'killswitch-boot.nft'))).toBe(true);

    const down = await awg(ns, e, ['down']);
    expect(down.code, show(down)).toBe(0);
    expect(await snapshotHost(ns, e)).toEqual(before);
  });
});
