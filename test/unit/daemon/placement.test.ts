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
import { PlacementSupervisor } from '../../../src/daemon/placement.js';
import { LineDecoder, type ToPlacer } from '../../../src/procs/placer-protocol.js';
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
const names = (m: ToPlacer | undefined) => (m?.type === 'config' ? m.rules.map((r) => r.name ?? '?') : []);
const tick = () => new Promise((r) => setImmediate(r));

describe('PlacementSupervisor', () => {
  it('narrows to the rules that stay before a converge removes one; unnamed rules keep their cgroup names', async () => {
    const child = new Child();
    const sup = new PlacementSupervisor({ placement: { connectorFd: 99, spawn: () => child }, env: {}, onError: () => {} });
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
});
