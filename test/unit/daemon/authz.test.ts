/**
 * The API's authorisation decisions without root: who is root, group or other; what the
 * socket group may call (ApiGate over given credentials); which secret files of a config a
 * group member may not make root read; `{env:}` secrets are never resolved for an API
 * request. The real kernel side (SO_PEERCRED, real users and files) is
 * test/netns/daemon-authz.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { accessOf, GROUP_POLICY, untrustedSecretFiles } from '../../../src/daemon/authz.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { ApiGate } from '../../../src/daemon/server.js';
import { realFileView, type FileView } from '../../../src/daemon/trusted-path.js';
import { loadConfigText } from '../../../src/config/load.js';
import { linuxCallerNatives, type PeerCred } from '../../../src/native/peercred.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';

const GROUP = 990;
const root: PeerCred = { pid: 10, uid: 0, gid: 0, groups: [] };
const member: PeerCred = { pid: 11, uid: 1000, gid: 1000, groups: [27, GROUP] };
const primary: PeerCred = { pid: 12, uid: 1001, gid: GROUP, groups: [] };
const stranger: PeerCred = { pid: 13, uid: 1002, gid: 1002, groups: [27] };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

describe('accessOf', () => {
  it('uid 0 and the daemon’s own uid are root; the socket group by primary or supplementary gid; anyone else is other', () => {
    const o = { selfUid: 0, groupGid: GROUP };
    expect(accessOf(root, o)).toBe('root');
    expect(accessOf({ ...stranger, uid: 4242 }, { selfUid: 4242 })).toBe('root');
    expect(accessOf(member, o)).toBe('group');
    expect(accessOf(primary, o)).toBe('group');
    expect(accessOf(stranger, o)).toBe('other');
    // no --socket-group: nobody is "group"
    expect(accessOf(member, { selfUid: 0 })).toBe('other');
  });
});

function gate(groupGid: number | null = GROUP): {
  g: ApiGate;
  as: (p: PeerCred) => { getPeer(): string };
  log: string[];
} {
  const log: string[] = [];
  const g = new ApiGate(
    { selfUid: 0, ...(groupGid !== null ? { groupGid } : {}) },
    (level, message) => log.push(`${level}: ${message}`),
    realFileView(linuxCallerNatives.acl),
  );
  let n = 0;
  const as = (p: PeerCred) => {
    const id = `awg-peer:${++n}`;
    g.peers.set(id, p);
    return { getPeer: () => id };
  };
  return { g, as, log };
}

const denial = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('allowed');
    },
    (e: unknown) => e as { kind: string; message: string },
  );

describe('ApiGate: per-RPC decisions', () => {
  it('root may call everything, without file checks (a path that does not exist still reaches the core)', async () => {
    const { g, as } = gate();
    for (const rpc of Object.keys(GROUP_POLICY) as (keyof typeof GROUP_POLICY)[])
      await expect(g.authorize(rpc, as(root), '/nonexistent/awg.yaml')).resolves.toEqual(root);
  });

  it('the group may read state; Down is root only; every denial is a permission error naming the RPC and the caller, and is logged', async () => {
    const { g, as, log } = gate();
    for (const rpc of ['Status', 'Watch', 'ListProcesses', 'Top'] as const)
      await expect(g.authorize(rpc, as(member))).resolves.toEqual(member);
    const e = await denial(g.authorize('Down', as(member)));
    expect(e).toMatchObject({ kind: 'permission' });
    expect(e.message).toBe(
      'permission denied: Down for uid 1000 (gid 1000, pid 11): Down removes every tunnel and the kill switch; only root may',
    );
    expect(log).toEqual([`warn: ${e.message}`]);
    const x = await denial(g.authorize('Exec', as(member)));
    expect(x).toMatchObject({
      kind: 'permission',
      message:
        'permission denied: Exec for uid 1000 (gid 1000, pid 11): Exec routes processes past the rules (awg exec --direct); only root may, as on Linux',
    });
  });

  it('others may call nothing, not even Status', async () => {
    const { g, as } = gate();
    for (const rpc of Object.keys(GROUP_POLICY) as (keyof typeof GROUP_POLICY)[])
      expect((await denial(g.authorize(rpc, as(stranger), '/etc/hostname'))).message).toContain(
        'only root and members of group 990 may use this socket',
      );
    const none = gate(null);
    expect((await denial(none.g.authorize('Status', none.as(member)))).message).toContain(
      'only root may use this socket',
    );
  });

  it('a connection whose credentials are unknown is refused', async () => {
    const { g } = gate();
    expect((await denial(g.authorize('Status', { getPeer: () => 'unknown' }))).message).toContain(
      "the caller's credentials are unknown",
    );
  });

  it('Confirm: a group member may confirm only a pending apply it made itself, before its deadline', async () => {
    const { g, as } = gate();
    expect((await denial(g.authorize('Confirm', as(member)))).message).toContain(
      'may confirm only an apply it made itself',
    );
    g.pendingConfirm = { uid: member.uid, deadline: Date.now() + 60_000 };
    await expect(g.authorize('Confirm', as(member))).resolves.toEqual(member);
    expect((await denial(g.authorize('Confirm', as(primary)))).kind).toBe('permission');
    g.pendingConfirm = { uid: member.uid, deadline: Date.now() - 1 };
    expect((await denial(g.authorize('Confirm', as(member)))).kind).toBe('permission');
  });

  it('Apply/Diff by the group: a config in a world-writable directory (/tmp) is refused before anything reads it', async () => {
    const { g, as } = gate();
    const dir = mkdtempSync(join(tmpdir(), 'awg-authz-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, 'version: 1\n');
    for (const rpc of ['Apply', 'Diff'] as const) {
      const e = await denial(g.authorize(rpc, as(member), file));
      expect(e.message).toContain(
        `config ${file} is not trusted: directory /tmp is writable by its group and others`,
      );
    }
  });
});

describe('untrustedSecretFiles', () => {
  const k = wgKeyPair();
  const peer = wgKeyPair();
  const text = (key: string, psk: string) => `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: ${key}
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "${peer.publicKey}"
        presharedKey: ${psk}
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.50.0/24]
`;
  const fs = (
    over: Record<string, { uid?: number; mode?: number; kind?: 'file' | 'dir' }> = {},
  ): FileView => {
    const base: Record<string, { uid?: number; mode?: number; kind?: 'file' | 'dir' }> = {
      '/': { kind: 'dir' },
      '/etc': { kind: 'dir' },
      '/etc/awg': { kind: 'dir' },
      '/etc/awg/wg.key': { mode: 0o600 },
      '/home': { kind: 'dir' },
      '/home/alice': { kind: 'dir', uid: 1000 },
      '/home/alice/psk': { uid: 1000 },
    };
    const all = { ...base, ...over };
    return {
      lstat: (p) => {
        const e = all[p];
        if (!e) return undefined;
        const kind = e.kind ?? 'file';
        return {
          kind,
          uid: e.uid ?? 0,
          gid: 0,
          mode:
            (kind === 'dir' ? 0o040000 : 0o100000) | (e.mode ?? (kind === 'dir' ? 0o755 : 0o644)),
        };
      },
      readlink: () => {
        throw new Error('no links');
      },
      acl: () => undefined,
    };
  };

  it('relative secret paths resolve against the config’s directory; a root-owned 0600 key in /etc/awg passes', () => {
    const l = loadConfigText(
      text('{file: wg.key}', '{file: /etc/awg/wg.key}'),
      '/etc/awg/awg.yaml',
    );
    expect(
      untrustedSecretFiles(l.config!, '/etc/awg/awg.yaml', { fs: fs(), positions: l.positions! }),
    ).toEqual([]);
  });

  it('a secret file in a user’s directory is reported with its place in the config; inline and env secrets are not files', () => {
    const l = loadConfigText(
      text('{file: wg.key}', '{file: /home/alice/psk}'),
      '/etc/awg/awg.yaml',
    );
    expect(
      untrustedSecretFiles(l.config!, '/etc/awg/awg.yaml', { fs: fs(), positions: l.positions! }),
    ).toEqual([
      {
        file: '/etc/awg/awg.yaml',
        line: 9,
        col: 23,
        path: 'tunnels.vpn.peers[0].presharedKey',
        severity: 'error',
        message:
          'secret file /home/alice/psk is not trusted: directory /home/alice is owned by uid 1000, not root',
      },
    ]);
    const inline = loadConfigText(text(`"${k.privateKey}"`, '{env: PSK}'), '/etc/awg/awg.yaml');
    expect(untrustedSecretFiles(inline.config!, '/etc/awg/awg.yaml', { fs: fs() })).toEqual([]);
  });

  it('a group-writable key file is reported', () => {
    const l = loadConfigText(text('{file: wg.key}', '{file: wg.key}'), '/etc/awg/awg.yaml');
    const issues = untrustedSecretFiles(l.config!, '/etc/awg/awg.yaml', {
      fs: fs({ '/etc/awg/wg.key': { mode: 0o660 } }),
    });
    expect(issues.map((i) => i.path)).toEqual([
      'tunnels.vpn.privateKey',
      'tunnels.vpn.peers[0].presharedKey',
    ]);
    expect(issues[0]!.message).toContain(
      'file /etc/awg/wg.key is writable by its group (mode 0660)',
    );
  });
});

describe('{env:} secrets and the API', () => {
  const me = wgKeyPair();
  const peer = wgKeyPair();
  const cfg = `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: {env: AWG_TEST_KEY}
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [10.200.50.0/24]
`;
  function daemon(configPath: string | undefined): Daemon {
    const d = new Daemon({
      ...(configPath ? { configPath } : {}),
      drivers: createFakeDriverSet(),
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      env: { ...process.env, AWG_TEST_KEY: me.privateKey },
    });
    cleanups.push(() => void d.stop({ teardown: false }));
    return d;
  }

  it('Apply and Diff through the API never resolve {env:}, even from the daemon’s own environment, even for its --config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-authz-env-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, cfg);
    const d = daemon(file);
    const r = await d.apply({ configPath: file });
    expect(r.outcome).toBe('failed');
    expect(r.mutations).toBe(0);
    expect(r.error).toMatchObject({ kind: 'invalid-config' });
    expect(r.error!.message).toContain(
      `${file}:5:17: tunnels.vpn.privateKey: cannot read secret (env AWG_TEST_KEY): {env:} secrets are not resolved for a config given through the daemon's API`,
    );
    await expect(d.diff({ configPath: file })).rejects.toThrow(/\{env:\} secrets are not resolved/);
  });

  it('control: the daemon’s own --config file does resolve {env:} from the daemon’s environment on its runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-authz-env-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, cfg);
    const d = daemon(file);
    const events: string[] = [];
    d.subscribe((e) =>
      events.push(e.type === 'reconcile-finished' ? `finished ${e.outcome}` : e.type),
    );
    await d.start();
    await expect
      .poll(() => events.find((e) => e.startsWith('finished')))
      .toBe('finished converged');
  });
});
