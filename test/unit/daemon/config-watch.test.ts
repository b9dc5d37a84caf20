/**
 * The config watch wakes the loop for a saved file, never on the half of an in-place save
 * that truncated it (the loop would read an empty config and report it invalid), and
 * follows an atomic-rename save.
 */
import {
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startWakeSources, type WakeSources } from '../../../src/daemon/wakes.js';

const FULL = 'version: 1\ntunnels: {}\n';

describe('config watch', () => {
  let dir = '';
  let w: WakeSources | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function watching(
    settleMs?: number,
  ): Promise<{ file: string; seen: string[]; woken: () => Promise<void> }> {
    dir = mkdtempSync(join(tmpdir(), 'awg-cw-'));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, FULL);
    const seen: string[] = [];
    let wake: () => void = () => {};
    w = await startWakeSources({
      configPath: file,
      isEcho: () => false,
      ...(settleMs !== undefined ? { settleMs } : {}),
      claims: () => ({ linkPrefix: 'awg-', routeProtocol: 0xa7, nftTable: 'awg' }),
      onWake: (reason) => {
        if (reason !== 'config') return;
        // what the loop would read at this wake
        seen.push(readFileSync(file, 'utf8'));
        wake();
      },
    });
    return { file, seen, woken: () => new Promise<void>((res) => (wake = res)) };
  }

  it('an in-place save wakes with the whole file, not the truncated one', async () => {
    // The pause between the truncation and the write has to stay shorter than the settle
    // time. Against the default 150 ms, a loaded machine could stretch the 40 ms pause past
    // it (the empty file's size then held still long enough: a wake on it); 2 s is 50× it.
    const { file, seen, woken } = await watching(2_000);
    const next = woken();
    // what an editor saving in place does: truncate, then write (here a pause between)
    const fd = openSync(file, 'w');
    await sleep(40);
    writeSync(fd, FULL.replace('{}', '{ }'));
    closeSync(fd);
    await next;
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s).toBe(FULL.replace('{}', '{ }'));
  });

  it('follows an atomic-rename save', async () => {
    const { file, seen, woken } = await watching();
    const next = woken();
    const tmp = join(dir, '.awg.yaml.swp');
    writeFileSync(tmp, FULL.replace('{}', '{  }'));
    renameSync(tmp, file);
    await next;
    expect(seen.at(-1)).toBe(FULL.replace('{}', '{  }'));
  });
});
