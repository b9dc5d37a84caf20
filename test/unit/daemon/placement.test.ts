/**
 * PlacementSupervisor with a scripted placer child: the rules it sends and when. A converge
 * that removes a rule first narrows the placer to the rules that stay (so it never places into
 * a cgroup the converge removes: with the exec gate, a block rule whose cgroup is gone refuses
 * the exec); the full new rules follow after the converge (sync).
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Rule } from '../../../src/config/schema.js';
import { NOTHING_TO_PLACE, PlacementSupervisor } from '../../../src/daemon/placement.js';
import {
  LineDecoder,
  encode,
  zeroStats,
  type ToPlacer,
} from '../../../src/procs/placer-protocol.js';
import type { PlacerChildProcess } from '../../../src/procs/placer-process.js';

class Child extends EventEmitter implements PlacerChildProcess {
  readonly pid = 4242;
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly lines: ToPlacer[] = [];
  constructor() {
    super();
    const d = new LineDecoder((l) => this.lines.push(JSON.parse(l) as ToPlacer));
    this.stdin.on('data', (b: Buffer) => d.push(b));
    this.stdin.on('finish', () => this.emit('exit', 0, null));
  }
  kill(): boolean {
    this.emit('exit', null, 'SIGKILL');
    return true;
  }
}

const rule = (r: Record<string, unknown>) => Rule.parse(r);
const names = (m: ToPlacer | undefined) =>
  m?.type === 'config' ? m.rules.map((r) => r.name ?? '?') : [];
const tick = () => new Promise((r) => setImmediate(r));

describe('PlacementSupervisor', () => {
  it('narrows to the rules that stay before a converge removes one; unnamed rules keep their cgroup names', async () => {
    const child = new Child();
    const sup = new PlacementSupervisor({
      placement: { connectorFd: 99, spawn: () => child },
      env: {},
      onError: () => {},
    });
    const a = rule({ name: 'a', match: { dir: '/opt/a' }, target: 'vpn' });
    const unnamed = rule({ match: { dir: '/opt/u' }, target: 'vpn' });
    const b = rule({ name: 'b', match: { dir: '/opt/b' }, target: 'vpn' });
    sup.sync([a, unnamed, b], 'awg', new Set());
    await tick();
    expect(names(child.lines.at(-1))).toEqual(['a', '?', 'b']);
    // the next config drops b (the unnamed rule keeps index 1: rule-1) and adds c
    const c = rule({ name: 'c', match: { dir: '/opt/c' }, target: 'vpn' });
    sup.narrow([a, unnamed, c]);
    await tick();
    expect(names(child.lines.at(-1))).toEqual(['a', 'rule-1']);
    sup.sync([a, unnamed, c], 'awg', new Set());
    await tick();
    expect(names(child.lines.at(-1))).toEqual(['a', '?', 'c']);
    // nothing removed: nothing sent before the converge
    const before = child.lines.length;
    sup.narrow([a, unnamed, c, b]);
    await tick();
    expect(child.lines.length).toBe(before);
    // a rule disabled counts as removed
    sup.narrow([a, { ...unnamed, enabled: false }, c]);
    await tick();
    expect(names(child.lines.at(-1))).toEqual(['a', 'c']);
    await sup.close();
  });

  it('on macOS (perApp flow-router) places nothing: no child, no /proc read, state off with the reason, no error', () => {
    const errors: string[] = [];
    let spawned = 0;
    let read = 0;
    const sup = new PlacementSupervisor({
      placement: { spawn: () => (spawned++, new Child()) },
      env: {},
      perApp: () => 'flow-router',
      mountinfo: () => (read++, ''),
      onError: (k, m) => errors.push(`${k}: ${m}`),
    });
    sup.sync(
      [rule({ name: 'a', match: { dir: '/Applications/Slack.app' }, target: 'vpn' })],
      'awg',
      new Set(),
    );
    sup.sync(
      [rule({ name: 'a', match: { dir: '/Applications/Slack.app' }, target: 'vpn' })],
      'awg',
      new Set(['vpn']),
    );
    expect({ spawned, read, errors }).toEqual({ spawned: 0, read: 0, errors: [] });
    expect(sup.status()).toEqual({
      state: 'off',
      reason: NOTHING_TO_PLACE['flow-router'],
      execs: 0,
      placed: 0,
      errors: 0,
    });
  });

  it("counts errors by kind (the total stays their sum); the child's placement error reports reach the events with their kind", async () => {
    const child = new Child();
    const errors: string[] = [];
    const sup = new PlacementSupervisor({
      placement: { connectorFd: 99, spawn: () => child },
      env: {},
      onError: (k, m) => errors.push(`${k}: ${m}`),
    });
    sup.sync([rule({ name: 'a', match: { dir: '/opt/a' }, target: 'vpn' })], 'awg', new Set());
    await tick();
    const gate = { events: 9, execs: 9, placed: 5, late: 3, errors: 4, overflows: 0, denied: 0 };
    const stats = { ...zeroStats(), execs: 20, placed: 6, missingCgroup: 1, errors: 2, esrch: 7 };
    child.stdout.write(
      encode({ type: 'stats', ...stats, connector: { received: 0, overruns: 0 }, rssKb: 1, gate }),
    );
    child.stdout.write(
      encode({
        type: 'error',
        kind: 'permission',
        message:
          'placement error writeFailed (2 more, 2 in all): moving a process into awg/a failed: EACCES',
      }),
    );
    await tick();
    expect(sup.status()).toMatchObject({
      state: 'active',
      execs: 20,
      placed: 6,
      errors: 10,
      errorsByKind: { missingCgroup: 1, writeFailed: 2, gateLate: 3, gateFailed: 4 },
    });
    expect(errors).toEqual([
      'permission: process watcher: placer process: placement error writeFailed (2 more, 2 in all): moving a process into awg/a failed: EACCES',
    ]);
    await sup.close();
  });

  it('no /proc/self/mountinfo (ENOENT) is `unsupported` placement, reported once, never thrown', () => {
    const errors: string[] = [];
    let read = 0;
    const sup = new PlacementSupervisor({
      placement: { spawn: () => new Child() },
      env: {},
      mountinfo: () => {
        read++;
        throw Object.assign(
          new Error("ENOENT: no such file or directory, open '/proc/self/mountinfo'"),
          { code: 'ENOENT' },
        );
      },
      onError: (k, m) => errors.push(`${k}: ${m}`),
    });
    const rules = [rule({ name: 'a', match: { dir: '/opt/a' }, target: 'vpn' })];
    expect(() => sup.sync(rules, 'awg', new Set())).not.toThrow();
    expect(() => sup.sync(rules, 'awg', new Set())).not.toThrow();
    expect(sup.status()).toMatchObject({ state: 'unavailable' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^unsupported: process placement by rules is unavailable: .*ENOENT/);
    // unsupported is final: the second run did not read again
    expect(read).toBe(1);
  });
});
