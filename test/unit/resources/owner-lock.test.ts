/**
 * The owner lock (src/resources/owner-lock.ts) with the real flock on a private run directory:
 * two open files of one lock in one process contend as two processes do.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  acquireOwner,
  currentOwner,
  ownerIdOf,
  ownerTagOf,
  type OwnerLock,
  type OwnerNatives,
} from '../../../src/resources/owner-lock.js';
import { linuxOwnerNatives } from '../../../src/native/owner-lock.js';
import { AwgError } from '../../../src/errors.js';

const linux = process.platform === 'linux';

describe.skipIf(!linux)('owner lock', () => {
  let dir: string;
  let runDir: string;
  const held: OwnerLock[] = [];
  const natives: OwnerNatives = { tryLock: linuxOwnerNatives.tryLock, scope: () => 'net-test' };
  const take = (stateDir: string, o: Partial<Parameters<typeof acquireOwner>[0]> = {}) =>
    acquireOwner({
      natives,
      command: 'apply',
      stateDir,
      runDir,
      waitMs: 0,
      hasApplied: () => false,
      ...o,
    }).then((l) => (held.push(l), l));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awgt-owner-'));
    runDir = join(dir, 'run');
  });
  afterEach(() => {
    for (const l of held.splice(0)) l.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the holder; a second one is refused naming it; released, it is free again', async () => {
    const a = await take(join(dir, 'a'), { command: 'daemon', socket: '/run/x.sock' });
    expect(a.record).toMatchObject({ pid: process.pid, command: 'daemon', socket: '/run/x.sock' });
    expect(currentOwner(natives, runDir)?.command).toBe('daemon');
    const e = await take(join(dir, 'a')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AwgError);
    expect((e as AwgError).kind).toBe('conflict');
    expect((e as AwgError).message).toContain(`\`awg daemon\` (pid ${process.pid}`);
    expect((e as AwgError).hint).toContain('--socket /run/x.sock');
    a.release();
    expect(currentOwner(natives, runDir)).toBeUndefined();
    const b = await take(join(dir, 'a'));
    expect(b.previous?.released).toBeDefined();
  });

  it('waits for a short-lived holder (apply, down) until it lets go', async () => {
    const a = await take(join(dir, 'a'));
    setTimeout(() => a.release(), 300);
    const b = await take(join(dir, 'a'), { waitMs: 10_000 });
    expect(b.record.command).toBe('apply');
  });

  it('another state directory is refused while the previous one has an applied record', async () => {
    (await take(join(dir, 'a'))).release();
    const e = await take(join(dir, 'b'), { hasApplied: (d) => d.endsWith('/a') }).catch(
      (x: unknown) => x,
    );
    expect((e as AwgError).message).toContain(`state directory ${join(dir, 'a')}`);
    expect((e as AwgError).hint).toContain(`awg down --state-dir ${join(dir, 'a')}`);
    // its objects gone (no applied record): taken over
    expect((await take(join(dir, 'b'))).record.stateDir).toBe(join(dir, 'b'));
  });

  it('one state directory from two scopes: the second is refused', async () => {
    await take(join(dir, 'a'));
    const other: OwnerNatives = { ...natives, scope: () => 'net-other' };
    const e = await take(join(dir, 'a'), { natives: other }).catch((x: unknown) => x);
    expect((e as AwgError).message).toContain('from another network namespace');
  });

  it('a holder that died without letting go is taken over with a warning naming it', async () => {
    mkdirSync(runDir, { mode: 0o755 });
    const dead = {
      version: 1,
      pid: 999_999_999,
      command: 'up',
      stateDir: join(dir, 'a'),
      ownerId: ownerIdOf(join(dir, 'a')),
      since: '2026-01-01T00:00:00.000Z',
    };
    writeFileSync(join(runDir, 'owner-net-test.lock'), JSON.stringify(dead), { mode: 0o600 });
    const told: string[] = [];
    await take(join(dir, 'a'), { onTakeover: (p) => told.push(`${p.command} ${p.pid}`) });
    expect(told).toEqual(['up 999999999']);
    expect(JSON.parse(readFileSync(join(runDir, 'owner-net-test.lock'), 'utf8')).pid).toBe(
      process.pid,
    );
  });

  it('refuses a run directory others may write (they could hold the lock)', async () => {
    mkdirSync(runDir);
    chmodSync(runDir, 0o777);
    const e = await take(join(dir, 'a')).catch((x: unknown) => x);
    expect((e as AwgError).kind).toBe('permission');
  });

  it('owner tags: 12 hex digits of the state directory, none for an in-memory store', () => {
    expect(ownerIdOf('/var/lib/awg')).toMatch(/^[0-9a-f]{12}$/);
    expect(ownerIdOf('/var/lib/awg')).not.toBe(ownerIdOf('/var/lib/awg2'));
    expect(ownerTagOf({ dir: ':memory:' })).toBeUndefined();
  });
});
