/**
 * The daemon's update watch (src/daemon/update-watch.ts) and where its answer shows: the status
 * (through the protobuf encoding), `awg status`'s line, the status document, the metric.
 */
import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import type { StatusResponse } from '../../../src/daemon/core.js';
import { createMetrics } from '../../../src/daemon/metrics.js';
import { statusDocument, StatusDocument } from '../../../src/daemon/status-document.js';
import { UpdateWatch } from '../../../src/daemon/update-watch.js';
import {
  LOADER_OPTIONS,
  PROTO_PATH,
  SERVICE_NAME,
  statusFromWire,
  statusToWire,
} from '../../../src/daemon/convert.js';
import type { Exec, ExecResult } from '../../../src/util/exec.js';
import { FakeCore, sampleStatus } from './server-fake-core.js';

const policy = (name: string) =>
  readFileSync(join(import.meta.dirname, '../../fixtures/linux/apt', `${name}.txt`), 'utf8');

function fakeExec(answers: Record<string, Partial<ExecResult>>): Exec & { ran: string[] } {
  const ran: string[] = [];
  const read = async (cmd: string, args: string[]) => {
    ran.push([cmd, ...args.slice(0, 1)].join(' '));
    const a = answers[`${cmd} ${args[0] ?? ''}`] ?? { code: 127, stderr: `${cmd}: not found` };
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', code: a.code ?? 0 };
  };
  return { ran, read, mutate: read, record: () => true, dryRun: false, mutations: 0 };
}

const NOW = () => new Date('2026-11-27T10:00:00Z');
const NEWER = {
  'apt-cache policy': { stdout: policy('policy-beta-newer') },
  'dpkg --compare-versions': { code: 0 },
};

describe('update watch', () => {
  it("checks a Debian install with awg's apt source: apt's lists only, no refresh by default", async () => {
    const exec = fakeExec(NEWER);
    const w = new UpdateWatch({
      exec,
      kind: 'deb',
      source: () => '/etc/apt/sources.list.d/awg.sources',
      current: '0.1.0',
      now: NOW,
    });
    expect(w.enabled).toBe(true);
    expect(await w.check()).toEqual({
      checkedAt: '2026-11-27T10:00:00.000Z',
      available: true,
      installed: '0.1.0',
      candidate: '0.1.1',
      suites: ['beta'],
    });
    expect(exec.ran).toEqual(['apt-cache policy', 'dpkg --compare-versions']);
  });

  it("refresh mode refreshes awg's source first", async () => {
    const exec = fakeExec({ ...NEWER, 'apt-get update': { stdout: 'Hit:1 x\n' } });
    const w = new UpdateWatch({
      exec,
      kind: 'deb',
      mode: 'refresh',
      source: () => '/s',
      current: '0.1.0',
      now: NOW,
    });
    await w.check();
    expect(exec.ran).toEqual(['apt-get update', 'apt-cache policy', 'dpkg --compare-versions']);
  });

  it('never checks without the source, for npm or a checkout, or when off', async () => {
    for (const o of [
      { kind: 'deb' as const, source: () => undefined },
      { kind: 'npm' as const, source: () => '/s' },
      { kind: 'checkout' as const, source: () => '/s' },
      { kind: 'deb' as const, source: () => '/s', mode: 'off' as const },
    ]) {
      const exec = fakeExec(NEWER);
      const w = new UpdateWatch({ exec, ...o });
      expect(await w.check()).toBeUndefined();
      expect(w.status()).toBeUndefined();
      expect(exec.ran).toEqual([]);
    }
  });

  it('a failed check keeps what the last good one found, with the reason', async () => {
    const answers: Record<string, Partial<ExecResult>> = { ...NEWER };
    const w = new UpdateWatch({
      exec: fakeExec(answers),
      kind: 'deb',
      source: () => '/s',
      current: '0.1.0',
      now: NOW,
    });
    await w.check();
    answers['apt-cache policy'] = { code: 100, stderr: 'E: Could not open lock file' };
    expect(await w.check()).toMatchObject({
      available: true,
      candidate: '0.1.1',
      error: expect.stringMatching(
        /apt-cache policy awg failed \(exit 100\): E: Could not open lock file/,
      ),
    });
  });
});

describe('update in the status, awg status, the status document and the metric', () => {
  const svc = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS)[SERVICE_NAME] as unknown as Record<
    string,
    grpc.MethodDefinition<object, object>
  >;
  const throughWire = (s: StatusResponse) => {
    const m = svc.Status!;
    return statusFromWire(m.responseDeserialize(m.responseSerialize(statusToWire(s))) as never);
  };
  const update = {
    checkedAt: '2026-11-27T10:00:00.000Z',
    available: true,
    installed: '0.1.0',
    candidate: '0.1.1',
    suites: ['beta'],
  };

  it('travels the protobuf encoding both ways; absent stays absent', () => {
    const s: StatusResponse = { ...sampleStatus(), update };
    expect(throughWire(s)).toEqual(s);
    const failed: StatusResponse = {
      ...sampleStatus(),
      update: {
        checkedAt: update.checkedAt,
        available: false,
        error: 'apt-cache policy awg failed',
      },
    };
    expect(throughWire(failed)).toEqual(failed);
    expect(throughWire(sampleStatus()).update).toBeUndefined();
  });

  it('a line in awg status, a field of the status document', () => {
    const s: StatusResponse = { ...sampleStatus(), update };
    expect(renderDaemonStatus(s)).toContain(
      '\nupdate: awg 0.1.1 (beta) is available, installed 0.1.0 — awg update --apply\n',
    );
    expect(
      renderDaemonStatus({ ...s, update: { ...update, available: false, candidate: '0.1.0' } }),
    ).not.toContain('update:');
    expect(StatusDocument.parse(statusDocument(s))).toMatchObject({ source: 'daemon', update });
  });

  it('awg_update_available{installed,candidate} 1 or 0; absent when not checked', async () => {
    const line = (t: string) => t.split('\n').find((l) => l.startsWith('awg_update_available{'));
    const core = new FakeCore();
    const m = createMetrics(core);
    core.statusValue = { ...sampleStatus(), update };
    expect(line(await m.render())).toBe(
      'awg_update_available{installed="0.1.0",candidate="0.1.1"} 1',
    );
    core.statusValue = {
      ...sampleStatus(),
      update: { ...update, available: false, installed: '0.1.1' },
    };
    expect(line(await m.render())).toBe(
      'awg_update_available{installed="0.1.1",candidate="0.1.1"} 0',
    );
    core.statusValue = sampleStatus();
    expect(line(await m.render())).toBeUndefined();
    m.close();
  });
});
