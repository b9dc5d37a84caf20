/**
 * The macOS service driver (launchd, `com.awg.*` LaunchDaemons) against the host model's
 * launchd: plist files, bootstrap / bootout with launchd's own errors (EIO when loaded,
 * ESRCH when not), `launchctl print` in the captured layout. Verified on the model only.
 */
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../src/model/change.js';
import { ids } from '../../../src/model/identity.js';
import type { ServiceSpec } from '../../../src/model/resources.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import {
  createDarwinServiceDriver,
  NOTE_NOT_LOADED,
} from '../../../src/resources/service/darwin.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { claims } from './helpers.js';

const LABEL = 'com.awg.daemon';
const PLIST = `/Library/LaunchDaemons/${LABEL}.plist`;
const spec = (v: string): ServiceSpec => ({
  name: LABEL,
  unitText: `<?xml version="1.0"?><plist><dict><key>v</key><string>${v}</string></dict></plist>\n`,
});

describe('macOS host model: launchd and the service driver', () => {
  const setup = () => {
    const host = MacHost.laptop();
    const ctx: ApplyContext = {
      exec: host,
      reporter: new MemoryReporter(),
      state: new MemoryStateStore(),
      dryRun: false,
      claims,
    };
    const d = createDarwinServiceDriver({ exec: host });
    const observe = async () =>
      (
        await d.observe({
          desired: {
            resources: [{ kind: 'service', id: ids.service(LABEL), spec: spec('1'), deps: [] }],
          },
          state: ctx.state,
        } as never)
      ).resources;
    const change = (
      action: Change<'service'>['action'],
      after?: ServiceSpec,
      before?: ServiceSpec,
    ): Change<'service'> =>
      ({
        kind: 'service',
        id: ids.service(LABEL),
        action,
        ...(after ? { after } : {}),
        ...(before ? { before } : {}),
        reason: 'test',
        cause: 'initial',
      }) as Change<'service'>;
    return { host, ctx, d, observe, change };
  };

  it('install writes the plist and bootstraps it; a second apply changes nothing; an update reloads; remove boots out and deletes', async () => {
    const { host, ctx, d, observe, change } = setup();
    const prior = host.snapshot();
    expect(await observe()).toEqual([]);
    expect(await d.apply(change('create', spec('1')), ctx)).toBe('changed');
    expect(host.files.get(PLIST)).toBe(spec('1').unitText);
    expect(host.launchd.get(LABEL)?.pid).toBeGreaterThan(0);
    expect((await observe()).map((r) => r.spec)).toEqual([spec('1')]);
    const n = host.mutations;
    expect(await d.apply(change('create', spec('1')), ctx)).toBe('unchanged');
    expect(host.mutations).toBe(n);

    expect(await d.apply(change('update', spec('2'), spec('1')), ctx)).toBe('changed');
    expect(
      host.log
        .slice(-4)
        .filter((l) => l.kind === 'mutate')
        .map((l) => l.line),
    ).toEqual([
      `launchctl bootout system/${LABEL}`,
      `tee ${PLIST}`,
      `launchctl bootstrap system ${PLIST}`,
    ]);
    expect((await observe()).map((r) => r.spec)).toEqual([spec('2')]);

    expect(await d.apply(change('delete', undefined, spec('2')), ctx)).toBe('changed');
    expect(host.snapshot()).toEqual(prior);
    expect(await d.apply(change('delete', undefined, spec('2')), ctx)).toBe('unchanged');
  });

  it('a plist on disk that launchd has not loaded is observed with a note, and apply bootstraps it', async () => {
    const { host, ctx, d, observe, change } = setup();
    host.files.set(PLIST, spec('1').unitText);
    expect((await observe()).map((r) => r.spec.unitText)).toEqual([
      `${spec('1').unitText}${NOTE_NOT_LOADED}`,
    ]);
    expect(
      await d.apply(
        change('update', spec('1'), {
          name: LABEL,
          unitText: `${spec('1').unitText}${NOTE_NOT_LOADED}`,
        }),
        ctx,
      ),
    ).toBe('changed');
    expect(host.log.filter((l) => l.kind === 'mutate').map((l) => l.line)).toEqual([
      `launchctl bootstrap system ${PLIST}`,
    ]);
    expect((await observe()).map((r) => r.spec)).toEqual([spec('1')]);
  });

  it('a crashed job stays loaded (launchd restarts KeepAlive jobs): still observed as installed', async () => {
    const { host, ctx, d, observe, change } = setup();
    await d.apply(change('create', spec('1')), ctx);
    host.crashJob(LABEL);
    expect((await observe()).map((r) => r.spec)).toEqual([spec('1')]);
    expect(await d.apply(change('create', spec('1')), ctx)).toBe('unchanged');
  });

  it("a label outside com.awg. is refused before anything runs; without root the refusal is launchd's", async () => {
    const { host, ctx, d, change } = setup();
    await expect(
      d.apply({ ...change('create', { name: 'org.other.daemon', unitText: 'x' }) }, ctx),
    ).rejects.toMatchObject({ kind: 'bug' });
    expect(host.mutations).toBe(0);
    host.root = false;
    await expect(d.apply(change('create', spec('1')), ctx)).rejects.toMatchObject({
      kind: 'permission',
      message: expect.stringMatching(/tee .*Permission denied/),
    });
    expect(host.files.size).toBe(0);
  });
});
