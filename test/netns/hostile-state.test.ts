/**
 * Step 8 — crash-safe state and bounded child processes, against the real kernel.
 *
 * - A corrupted state directory leaves `awg down` working: apply a WireGuard tunnel with
 *   rules, DNS, the kill switch and a non-default routing band; corrupt the applied record and
 *   the engine record; `awg down` exits 0, the namespace is back at its snapshot, no engine is
 *   left and the corrupt files are moved aside (`<name>.json.corrupt-<timestamp>`).
 *   Before: `awg down` died on the SyntaxError (exit 70) and removed nothing.
 * - `awg up` (the daemon core) starting over a corrupt applied record warns and converges.
 * - A hanging `nft` (a fake on PATH that sleeps) is killed after its timeout; the apply fails
 *   naming the command and the namespace is back at its snapshot.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  fakeTool,
  ipRules,
  makeAwgEnv,
  nftTable,
  show,
  snapshotHost,
  which,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { converged, startUp } from './daemon-support.js';
import { runProgram } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

/**
 * the programs the rules match, named for this run (runProgram): never a real program of the
 * host (apt, firefox…) that a placer could move
 */
const APT = runProgram('awgt-apt');
const FIREFOX = runProgram('awgt-firefox');

/** a tunnel, rules, DNS, the kill switch, and a routing band away from the defaults */
function tunnelConfig(): string {
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
dns: { system: default-tunnel }
routing: { tableBase: 53000, rulePriority: 6200 }
killSwitch: { enabled: true, allowLan: true }
`;
}

/** engine processes of this test environment (their UAPI socket is under e.dir) */
function engines(e: AwgEnv): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes('engine') && argv.some((a) => a.startsWith(e.dir))) out.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function noEngines(e: AwgEnv): Promise<number[]> {
  for (let i = 0; i < 100 && engines(e).length; i++) await new Promise((r) => setTimeout(r, 100));
  return engines(e);
}

const corruptFiles = (e: AwgEnv) =>
  readdirSync(e.stateDir)
    .filter((f) => f.includes('.corrupt-'))
    .sort();

describe.skipIf(skip)(
  'hostile state: a corrupt state directory never stops down or the daemon',
  () => {
    let ns: string;
    let peerNs: string;
    let e: AwgEnv;
    beforeEach(async () => {
      await ensureDist();
      await sweepStaleNetns();
      ns = await createNetns('hostile-st');
      peerNs = await createNetns('hostile-stp');
      await vethPair(ns, peerNs, { addrA: '10.200.9.1/24', addrB: '10.200.9.2/24' });
      e = makeAwgEnv();
    });
    afterEach(async () => {
      if (ns && e) await awg(ns, e, ['down']).catch(() => undefined);
      for (const pid of engines(e)) process.kill(pid, 'SIGKILL');
      if (ns) await destroyNetns(ns);
      if (peerNs) await destroyNetns(peerNs);
      cleanupAwgEnv(e);
    });

    it('apply, corrupt the applied and engine records, down: host back at its snapshot, files moved aside', async () => {
      const before = await snapshotHost(ns, e);
      const cfg = writeConfig(e, 'wg.yaml', tunnelConfig());
      const a = await awg(ns, e, ['apply', '-f', cfg]);
      expect(a.code, show(a)).toBe(0);
      expect(await nftTable(ns, 'awg')).toContain('managed-by=awg');
      expect((await ipRules(ns, 4)).some((r) => r.priority >= 6200 && r.priority < 6300)).toBe(
        true,
      );
      expect(engines(e)).toHaveLength(1);

      // a torn record (as a crash mid-write of an older version left it) and plain garbage
      const applied = readFileSync(join(e.stateDir, 'applied.json'), 'utf8');
      writeFileSync(join(e.stateDir, 'applied.json'), applied.slice(0, applied.length >> 1));
      writeFileSync(join(e.stateDir, 'engine-vpn.json'), '\u0000\u0000garbage');

      const d = await awg(ns, e, ['down']);
      expect(d.code, show(d)).toBe(0);
      expect(d.stderr).toMatch(
        /warning: state record \S+\/applied\.json is unusable \(not valid JSON: .*\); moved aside to \S+\/applied\.json\.corrupt-\S+ and ignored/,
      );
      expect(d.stderr).toMatch(
        /warning: state record \S+\/engine-vpn\.json is unusable \(not valid JSON: .*\); moved aside to/,
      );
      expect(await snapshotHost(ns, e)).toEqual(before);
      expect(await noEngines(e)).toEqual([]);
      const moved = corruptFiles(e);
      expect(moved.map((f) => f.replace(/\.corrupt-.*/, ''))).toEqual([
        'applied.json',
        'engine-vpn.json',
      ]);
      expect(readFileSync(join(e.stateDir, moved[0]!), 'utf8')).toBe(
        applied.slice(0, applied.length >> 1),
      );
      expect(existsSync(join(e.stateDir, 'applied.json'))).toBe(false);

      // and the next apply starts from a clean record
      const again = await awg(ns, e, ['apply', '-f', cfg]);
      expect(again.code, show(again)).toBe(0);
      expect(JSON.parse(readFileSync(join(e.stateDir, 'applied.json'), 'utf8'))).toMatchObject({
        outcome: 'converged',
      });
    });

    it('`awg up` over a corrupt applied record warns, converges and leaves the host clean on stop', async () => {
      const before = await snapshotHost(ns, e);
      const cfg = writeConfig(
        e,
        'ks.yaml',
        `version: 1\nkillSwitch: { enabled: false }\nrules:\n  - name: upd\n    match: { name: ${APT} }\n    target: direct\n`,
      );
      mkdirSync(e.stateDir, { recursive: true });
      writeFileSync(join(e.stateDir, 'applied.json'), '{"configFile": "/etc/awg/awg.yaml", "clai');
      const up = startUp(ns, e, cfg);
      try {
        await up.waitEvent(converged, 0, 60_000);
        expect(up.proc.output()).toMatch(
          /state record \S+\/applied\.json is unusable \(not valid JSON: [^)]*\); moved aside to \S+ and ignored/,
        );
        expect(corruptFiles(e).map((f) => f.replace(/\.corrupt-.*/, ''))).toEqual(['applied.json']);
        expect(JSON.parse(readFileSync(join(e.stateDir, 'applied.json'), 'utf8'))).toMatchObject({
          configFile: cfg,
        });
      } finally {
        await up.proc.kill(20_000);
      }
      expect(await snapshotHost(ns, e)).toEqual(before);
    });
  },
);

describe.skipIf(skip)('hostile children: a hanging command is killed after its timeout', () => {
  let ns: string;
  let e: AwgEnv;
  beforeEach(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('hostile-ch');
    e = makeAwgEnv();
  });
  afterEach(async () => {
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
  });

  it('a fake nft that sleeps on `-f` is killed; apply fails naming it and rolls back', async () => {
    const nft = which('nft');
    // the first `nft -f` hangs (and ignores SIGTERM); every other call is the real nft
    const bin = fakeTool(
      e.dir,
      'nft',
      `for a in "$@"; do if [ "$a" = "-f" ] && [ ! -e ${e.dir}/hung ]; then : > ${e.dir}/hung; echo $$ > ${e.dir}/hung.pid; trap '' TERM; sleep 600; fi; done\nexec ${nft} "$@"`,
    );
    const before = await snapshotHost(ns, e);
    const cfg = writeConfig(
      e,
      'rules.yaml',
      `version: 1\nrules:\n  - name: upd\n    match: { name: ${APT} }\n    target: direct\n`,
    );
    const r = await awg(ns, e, ['apply', '-f', cfg], {
      pathPrepend: bin,
      extraEnv: { AWG_EXEC_TIMEOUT_MS: '3000' },
      timeoutMs: 100_000,
    });
    expect(existsSync(join(e.dir, 'hung'))).toBe(true);
    expect(r.code, show(r)).toBe(6);
    expect(r.stderr).toMatch(
      /awg: error \[driver\]: firewall\/inet\/awg: nft -f - timed out after 3 s and was killed/,
    );
    expect(r.stderr).toContain('returned to its state before this apply');
    expect(await snapshotHost(ns, e)).toEqual(before);
    // the hung process (and its sleep) are gone
    const pid = Number(readFileSync(join(e.dir, 'hung.pid'), 'utf8'));
    let alive = true;
    for (let i = 0; i < 50 && alive; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((res) => setTimeout(res, 100));
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
  });
});
