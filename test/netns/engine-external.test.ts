/**
 * `engine: {external: PROGRAM}` beside the embedded engine, on real TUNs and real traffic:
 * one config with two tunnels, `ext` served by an external program (our own `awg engine -f`
 * behind a wrapper script, as wireguard-go's command line runs it: the real amneziawg-go
 * builds are not part of the repository) and `emb` by our embedded engine, their peers two
 * Debian wireguard-go instances in another namespace. The kill switch is on: the external
 * engine's UDP passes it only because awg gave it the bypass mark (`fwmark=` over UAPI).
 * - one-shot `awg apply`: switching `ext` from embedded to external is a replace of its
 *   engine only (`awg diff`); traffic flows through both; a second apply changes nothing;
 *   `awg down` leaves no process, socket or link;
 * - `awg up` (the daemon loop): `kill -9` of the external engine is noticed at once (its
 *   exit wakes the loop) and repaired — a drift event names engine/ext — and traffic flows
 *   again; stopping it leaves nothing.
 * The kernel engine cannot run here (this kernel has no WireGuard module): that `awg apply`
 * refuses it before touching anything is checked too.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  awg,
  AWG_BIN,
  type AwgEnv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  wgKeyPair,
  writeConfig,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import type { EngineRecord } from '../../src/resources/engine/process-host.js';
import { converged, startUp, type Up } from './daemon-support.js';
import {
  pingEventually,
  pingOk,
  startWireguardGo,
  wgGoAddress,
  wgSetconf,
  type WgGo,
} from './interop-wg.js';

const skip = requireNetnsPrereqs(['wireguard-go', 'wg', 'ping']);

const N = 110 + Math.floor(Math.random() * 40) * 2;
const UNDER = `10.200.${N}`; // the veth: .1 here, .2 the peers
const EXT = `10.200.${N + 1}`; // tunnel ext: .1 here, .2 wireguard-go A
const EMB = `10.200.${N + 2}`; // tunnel emb: .1 here, .2 wireguard-go B

describe.skipIf(skip)('an external engine beside the embedded one', () => {
  let ns = '';
  let peerNs = '';
  let e: AwgEnv;
  let wrapper = '';
  const peers: WgGo[] = [];
  let up: Up | undefined;
  const keys = { ext: wgKeyPair(), emb: wgKeyPair(), a: wgKeyPair(), b: wgKeyPair() };

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('eext');
    peerNs = await createNetns('eextp');
    await vethPair(ns, peerNs, { addrA: `${UNDER}.1/24`, addrB: `${UNDER}.2/24` });
    e = makeAwgEnv();
    // the external program: our engine in wireguard-go's role (`PROGRAM -f IFACE`)
    wrapper = join(e.dir, 'awg-external-engine');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${AWG_BIN} engine "$@"\n`, {
      mode: 0o755,
    });
    const tag = randomBytes(2).toString('hex');
    for (const [side, port, net, mine, theirs] of [
      ['a', 51901, EXT, keys.a, keys.ext],
      ['b', 51902, EMB, keys.b, keys.emb],
    ] as const) {
      const p = await startWireguardGo(peerNs, `awgtx${tag}${side}`);
      peers.push(p);
      await wgSetconf(
        peerNs,
        p.iface,
        e.dir,
        `[Interface]\nPrivateKey = ${mine.privateKey}\nListenPort = ${port}\n\n[Peer]\nPublicKey = ${theirs.publicKey}\nAllowedIPs = ${net}.1/32\n`,
      );
      await wgGoAddress(peerNs, p.iface, `${net}.2/24`);
    }
  }, 60_000);

  afterAll(async () => {
    await up?.proc.kill(5000);
    if (ns && e) await awg(ns, e, ['down']).catch(() => undefined);
    for (const p of peers) await p.stop();
    if (ns) await destroyNetns(ns);
    if (peerNs) await destroyNetns(peerNs);
    cleanupAwgEnv(e);
  });

  function config(extEngine: 'embedded' | 'external'): string {
    const engine =
      extEngine === 'external'
        ? `{ external: ${wrapper}, uapiDir: ${e.env.AWG_UAPI_DIR} }`
        : 'embedded';
    return writeConfig(
      e,
      `${extEngine}.yaml`,
      `version: 1
tunnels:
  ext:
    type: wireguard
    engine: ${engine}
    privateKey: "${keys.ext.privateKey}"
    addresses: [${EXT}.1/24]
    mtu: 1380
    peers:
      - publicKey: "${keys.a.publicKey}"
        endpoint: ${UNDER}.2:51901
        allowedIPs: [${EXT}.0/24]
  emb:
    type: wireguard
    privateKey: "${keys.emb.privateKey}"
    addresses: [${EMB}.1/24]
    peers:
      - publicKey: "${keys.b.publicKey}"
        endpoint: ${UNDER}.2:51902
        allowedIPs: [${EMB}.0/24]
killSwitch: on
`,
    );
  }

  const record = (): EngineRecord =>
    JSON.parse(readFileSync(join(e.stateDir, 'engine-ext.json'), 'utf8')) as EngineRecord;
  const cmdline = (pid: number) =>
    readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const mtu = async (link: string) =>
    (
      JSON.parse((await nsExec(ns, 'ip', ['-j', 'link', 'show', link])).stdout) as { mtu: number }[]
    )[0]!.mtu;

  /** nothing of ours is left in the namespace: no process, no socket, no awg- link */
  async function expectNothingLeft(): Promise<void> {
    const pids = (await run('ip', ['netns', 'pids', ns])).stdout.trim();
    expect(pids, 'processes left in the namespace').toBe('');
    const uapi = e.env.AWG_UAPI_DIR!;
    expect(existsSync(uapi) ? readdirSync(uapi) : []).toEqual([]);
    const links = (await nsExec(ns, 'ip', ['-br', 'link'])).stdout;
    expect(links).not.toMatch(/awg-/);
  }

  it('awg engine: kernel is refused before anything is applied (no WireGuard module here)', async () => {
    const cfg = writeConfig(
      e,
      'kernel.yaml',
      readFileSync(config('embedded'), 'utf8').replace('engine: embedded', 'engine: kernel'),
    );
    const r = await awg(ns, e, ['apply', '-f', cfg]);
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(
      /kernel\.yaml:5:13: tunnels\.ext\.engine: kernel needs Linux's WireGuard module \(modprobe wireguard\); this kernel has none/,
    );
    expect(r.mutations).toEqual([]);
    await expectNothingLeft();
  });

  it('one-shot: embedded → external is one replace; traffic through both; apply again is a no-op; down leaves nothing', async () => {
    const a = await awg(ns, e, ['apply', '-f', config('embedded')]);
    expect(a.code, show(a)).toBe(0);
    expect(await pingEventually(ns, `${EXT}.2`, 15_000)).toBe(true);

    const ext = config('external');
    const d = await awg(ns, e, ['diff', '-f', ext, '--json']);
    expect(d.code, show(d)).toBe(2);
    const changes = d.json<{ changes: { id: string; action: string; fields?: string[] }[] }>()
      .changes;
    expect(changes.map((c) => [c.id, c.action, c.fields])).toEqual([
      ['engine/ext', 'replace', ['engine']],
    ]);

    const r = await awg(ns, e, ['apply', '-f', ext]);
    expect(r.code, show(r)).toBe(0);
    expect(r.mutations).toContainEqual(
      `[#] [spawn] ${wrapper} -f awg-ext (UAPI ${e.env.AWG_UAPI_DIR}/awg-ext.sock)`,
    );
    const rec = record();
    expect(cmdline(rec.pid)).toEqual([process.execPath, AWG_BIN, 'engine', '-f', 'awg-ext']);
    expect(await mtu('awg-ext')).toBe(1380);
    expect(await pingEventually(ns, `${EXT}.2`, 15_000)).toBe(true);
    expect(await pingOk(ns, `${EMB}.2`)).toBe(true);

    const again = await awg(ns, e, ['apply', '-f', ext]);
    expect(again.code, show(again)).toBe(0);
    expect(again.mutations).toEqual([]);
    expect(record().pid).toBe(rec.pid);
    const same = await awg(ns, e, ['diff', '-f', ext]);
    expect(same.code, show(same)).toBe(0);

    const down = await awg(ns, e, ['down']);
    expect(down.code, show(down)).toBe(0);
    await expectNothingLeft();
  }, 120_000);

  it('the daemon: kill -9 of the external engine wakes the loop, which starts it again; traffic flows again', async () => {
    up = startUp(ns, e, config('external'));
    await up.waitEvent(converged, 0, 40_000);
    expect(await pingEventually(ns, `${EXT}.2`, 15_000)).toBe(true);
    expect(await pingOk(ns, `${EMB}.2`)).toBe(true);

    const before = record();
    const from = up.mark();
    process.kill(before.pid, 'SIGKILL');
    const t0 = Date.now();
    const drift = await up.waitEvent(
      (ev) => ev.type === 'drift' && ev.ids.includes('engine/ext'),
      from,
      30_000,
    );
    expect(drift).toMatchObject({ repaired: true });
    const woke = up
      .events()
      .slice(from)
      .find((ev) => ev.type === 'reconcile-started');
    // the exit woke the loop (not the drift timer)
    expect(woke).toMatchObject({ reason: 'engine' });
    expect(Date.now() - t0).toBeLessThan(20_000);
    const after = record();
    expect(after.pid).not.toBe(before.pid);
    expect(cmdline(after.pid)).toContain('awg-ext');
    expect(await pingEventually(ns, `${EXT}.2`, 15_000)).toBe(true);
    expect(await pingOk(ns, `${EMB}.2`)).toBe(true);

    // stopped, the daemon leaves the kill switch (fail-closed) and nothing else
    await up.proc.kill(10_000);
    up = undefined;
    await expectNothingLeft();
  }, 120_000);
});
