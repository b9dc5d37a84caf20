/**
 * Which path the shaper's qdisc read takes: through an Exec that does not run on this host
 * (a fake, a namespace's, a read pass over either) it is the `tc -j qdisc show` process, its
 * JSON parsed as before; on this host it is read over rtnetlink (test/netns/qdisc-rows.test.ts).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runsOnHost } from '../../../../src/resources/prefetch.js';
import { ReadPassExec } from '../../../../src/resources/read-pass.js';
import { linuxListings, TC_QDISC_READ } from '../../../../src/resources/reads.js';
import { parseQdiscJson } from '../../../../src/resources/shaper/parse.js';
import { readQdiscs } from '../../../../src/resources/shaper/qdiscs.js';
import { RecordingExec } from '../../../helpers/exec.js';

const fx = readFileSync(
  new URL('../../../fixtures/linux/shaper/qdisc.json', import.meta.url),
  'utf8',
);

describe('readQdiscs', () => {
  it('through an Exec elsewhere: the tc process, parsed by parseQdiscJson', async () => {
    const key = [TC_QDISC_READ[0], ...TC_QDISC_READ[1]].join(' ');
    const calls: string[] = [];
    const exec = new RecordingExec({ [key]: fx });
    const read = exec.read.bind(exec);
    exec.read = (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      return read(cmd, args);
    };
    for (const e of [exec, new ReadPassExec(exec, linuxListings())]) {
      expect(runsOnHost(e)).toBe(false);
      expect(await readQdiscs(e)).toEqual(parseQdiscJson(fx));
    }
    expect(calls).toEqual([key, key]);
  });
});
