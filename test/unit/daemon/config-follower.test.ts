/**
 * The config follower without a daemon: a fake `read` stands in for prepare (a file whose
 * text says `bad` is invalid). Reloads keep the last good read, report an invalid file once
 * per content, watch the files read, and the config state names the revision the good read
 * runs at; readConfig turns prepare's verdicts into AwgErrors.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AwgError } from '../../../src/errors.js';
import {
  ConfigFollower,
  readConfig,
  sourcesHash,
  type ConfigReadOptions,
  type ReadResult,
} from '../../../src/daemon/config-follower.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import type { Prepared } from '../../../src/pipeline/prepare.js';
import { loadPlatform } from '../../../src/resources/registry.js';
import { FileStateStore, MemoryStateStore } from '../../../src/util/state.js';
import { PARSED_LISTS_DIR } from '../../../src/config/parsed-lists.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';

const SHA_A = 'a'.repeat(40);
const SHA_B = 'b'.repeat(40);
const SHA_C = 'c'.repeat(40);

describe('config follower', () => {
  let dir: string;
  let file: string;
  let events: DaemonEvent[];
  let watched: string[][];
  let reads: { file: string; api: boolean }[];

  /** prepare's stand-in: the file's text decides; `sources` lists the file and its overlays */
  const read = async (f: string, api: boolean): Promise<ReadResult> => {
    reads.push({ file: f, api });
    const text = readFileSync(f, 'utf8');
    if (text.includes('bad'))
      return { ok: false, error: new AwgError('invalid-config', `${f}: invalid configuration`) };
    const overlays = text.includes('overlay') ? [join(dir, 'host.yaml')] : [];
    return { ok: true, prepared: { file: f, sources: [f, ...overlays] } as unknown as Prepared };
  };

  // `file: undefined` follows no file; leaving `file` out follows the test's file
  function follower(
    o: { file?: string | undefined; host?: string; held?: (r?: string) => boolean } = {},
  ): ConfigFollower {
    return new ConfigFollower({
      ...('file' in o ? { file: o.file } : { file }),
      ...(o.host ? { host: o.host } : {}),
      ...(o.held ? { held: o.held } : {}),
      read,
      emit: (e) => events.push(e),
      watch: (files) => watched.push(files),
    });
  }
  const types = () =>
    events.map((e) => (e.type === 'config-changed' ? `${e.type}:${e.valid}` : e.type));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-follow-'));
    file = join(dir, 'awg.yaml');
    writeFileSync(file, 'good 1');
    events = [];
    watched = [];
    reads = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('follows nothing until a file is known; forget goes back to nothing', async () => {
    const c = follower({ file: undefined });
    expect(c.file).toBeUndefined();
    expect(await c.reload()).toEqual({});
    expect(c.state({ lastPlanChanges: 0 })).toBeUndefined();
    c.follow(file, { file, sources: [file] } as unknown as Prepared);
    expect(c.file).toBe(file);
    expect(c.good?.file).toBe(file);
    c.forget();
    expect(c.file).toBeUndefined();
    expect(c.good).toBeUndefined();
    expect(watched.at(-1)).toEqual([]);
  });

  it('a reload reads the file followed (not as an API request) and watches the files it read', async () => {
    writeFileSync(file, 'good overlay');
    const c = follower();
    const r = await c.reload();
    expect(r.source?.file).toBe(file);
    expect(r.error).toBeUndefined();
    expect(reads).toEqual([{ file, api: false }]);
    expect(watched).toEqual([[file, join(dir, 'host.yaml')]]);
    // the first read of a good file is no change
    expect(events).toEqual([]);
    expect(c.state({ lastPlanChanges: 2, lastConverged: 'then' })).toEqual({
      valid: true,
      sources: [file, join(dir, 'host.yaml')],
      lastConverged: 'then',
      lastPlanChanges: 2,
    });
  });

  it('an invalid edit keeps the last good read and is reported once per content', async () => {
    const c = follower();
    await c.reload();
    writeFileSync(file, 'bad 1');
    const r1 = await c.reload();
    expect(r1.source?.file).toBe(file);
    expect(r1.error?.kind).toBe('invalid-config');
    expect(types()).toEqual(['config-changed:false', 'error']);
    // the same bad content again: said once
    await c.reload();
    expect(types()).toEqual(['config-changed:false', 'error']);
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      valid: false,
      error: `${file}: invalid configuration`,
    });
    // fixed: valid again, and said so
    writeFileSync(file, 'good 2');
    expect((await c.reload()).error).toBeUndefined();
    expect(types()).toEqual(['config-changed:false', 'error', 'config-changed:true']);
    expect(c.state({ lastPlanChanges: 0 })?.valid).toBe(true);
  });

  it('an invalid file at start has no source to fall back on: an error, no change event', async () => {
    writeFileSync(file, 'bad');
    const c = follower();
    const r = await c.reload();
    expect(r.source).toBeUndefined();
    expect(r.error?.kind).toBe('invalid-config');
    expect(types()).toEqual(['error']);
  });

  it('an edit of an overlay file the good read applied is a change too', async () => {
    writeFileSync(file, 'good overlay');
    writeFileSync(join(dir, 'host.yaml'), 'one');
    const c = follower();
    await c.reload();
    writeFileSync(join(dir, 'host.yaml'), 'two');
    await c.reload();
    expect(types()).toEqual(['config-changed:true']);
  });

  it('follow (an API apply) makes the file the good one and the next reload no change', async () => {
    const other = join(dir, 'other.yaml');
    writeFileSync(other, 'good other');
    const c = follower();
    await c.reload();
    c.follow(other, { file: other, sources: [other] } as unknown as Prepared);
    expect(c.file).toBe(other);
    expect(c.good?.file).toBe(other);
    expect(watched.at(-1)).toEqual([other]);
    await c.reload();
    expect(reads.at(-1)).toEqual({ file: other, api: false });
    expect(events).toEqual([]);
  });

  it('the revision: the commit of the good read; a pull that leaves the files runs at the new one', async () => {
    mkdirSync(join(dir, '.git'));
    const head = (sha: string) => writeFileSync(join(dir, '.git', 'HEAD'), `${sha}\n`);
    head(SHA_A);
    const c = follower({ host: 'laptop' });
    await c.reload();
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      revision: SHA_A,
      checkoutRevision: SHA_A,
      host: 'laptop',
    });
    expect(watched.at(-1)).toContain(join(dir, '.git', 'HEAD'));
    // a commit that touched none of our files: the same config, at the new commit
    head(SHA_B);
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      revision: SHA_B,
      checkoutRevision: SHA_B,
    });
    // the watcher saw HEAD move: the good read is now the one at B
    await c.reload();
    // a commit that broke it: the good one keeps running at the commit it was read at
    head(SHA_C);
    writeFileSync(file, 'bad');
    await c.reload();
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      revision: SHA_B,
      checkoutRevision: SHA_C,
      valid: false,
    });
  });

  it('a rejected revision at HEAD is not read: the good one runs, at the revision it was read at', async () => {
    mkdirSync(join(dir, '.git'));
    const head = (sha: string) => writeFileSync(join(dir, '.git', 'HEAD'), `${sha}\n`);
    head(SHA_A);
    const rejected = new Set<string>();
    const c = follower({ held: (r) => r !== undefined && rejected.has(r) });
    const good = (await c.reload()).source;
    // B converged, failed its check and was reverted: A's config followed again, as read at A
    head(SHA_B);
    writeFileSync(file, 'good 2');
    await c.reload();
    rejected.add(SHA_B);
    c.follow(file, good!.prepared, SHA_A);
    const n = reads.length;
    expect((await c.reload()).source).toBe(c.good);
    expect(c.good?.prepared).toBe(good!.prepared);
    expect(reads.length).toBe(n);
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      revision: SHA_A,
      checkoutRevision: SHA_B,
      valid: true,
    });
    // a newer commit is read as any other
    head(SHA_C);
    await c.reload();
    expect(reads.length).toBe(n + 1);
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({ revision: SHA_C });
  });

  it('sourcesHash: path and content; an unreadable file by its error', () => {
    const h = sourcesHash([file]);
    expect(sourcesHash([file, file])).toBe(h);
    writeFileSync(file, 'good 3');
    expect(sourcesHash([file])).not.toBe(h);
    const gone = join(dir, 'gone.yaml');
    expect(sourcesHash([gone])).toBe(sourcesHash([gone]));
    expect(sourcesHash([gone])).not.toBe(sourcesHash([file]));
  });
});

describe('readConfig', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'awg-readcfg-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const opts = async (o: Partial<ConfigReadOptions> = {}): Promise<ConfigReadOptions> => {
    const platform = await loadPlatform();
    return {
      platform: async () => platform,
      ownEnv: false,
      down: new Set(),
      state: new MemoryStateStore(),
      reporter: silentReporter,
      facts: { cgroupNftPrefix: '' },
      exec: new RecordingExec(),
      ...o,
    };
  };

  it("{env:} secrets resolve only for the daemon's own file", async () => {
    const me = wgKeyPair();
    const peer = wgKeyPair();
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: {env: AWG_TEST_KEY}\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${peer.publicKey}"\n        endpoint: 10.200.9.2:51820\n        allowedIPs: [10.200.50.0/24]\n`,
    );
    const env = { ...process.env, AWG_TEST_KEY: me.privateKey };
    const own = await readConfig(file, await opts({ ownEnv: true, env }));
    expect(own.ok).toBe(true);
    const api = await readConfig(file, await opts({ ownEnv: false, env }));
    expect(api.ok).toBe(false);
    if (!api.ok) {
      expect(api.error.kind).toBe('invalid-config');
      expect(api.error.message).toContain(`${file}: invalid configuration: `);
      expect(api.error.message).toContain('{env:} secrets are not resolved');
    }
  });

  it("keeps each list's parse and its bytes in the state directory, and follows an edit", async () => {
    const peer = wgKeyPair();
    const file = join(dir, 'awg.yaml');
    const list = join(dir, 'list.txt');
    const lines = Array.from({ length: 50 }, (_, i) => `10.${i}.0.0/16`);
    writeFileSync(list, `${lines.join('\n')}\nexample.org\n`);
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: "${wgKeyPair().privateKey}"\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${peer.publicKey}"\n        endpoint: 10.200.9.2:51820\n        allowedIPs: [0.0.0.0/0]\nrules:\n  - name: listed\n    to: {lists: [list.txt]}\n    target: vpn\n`,
    );
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const state = new FileStateStore(stateDir);
    const kept = () => join(stateDir, PARSED_LISTS_DIR);
    const first = await readConfig(file, await opts({ state }));
    expect(first.ok, first.ok ? '' : first.error.message).toBe(true);
    const copies = readdirSync(kept()).filter((f) => f.endsWith('.list'));
    expect(copies).toHaveLength(1);
    expect(readFileSync(join(kept(), copies[0]!), 'utf8')).toBe(readFileSync(list, 'utf8'));
    // an inserted line: read again, and the copy kept follows the edit
    writeFileSync(list, `${lines.join('\n')}\n192.0.2.7\nexample.org\n`);
    const second = await readConfig(file, await opts({ state }));
    expect(second.ok).toBe(true);
    expect(readFileSync(join(kept(), copies[0]!), 'utf8')).toContain('192.0.2.7');
    // a state store that is not a directory keeps nothing (and writes nowhere)
    const mem = await readConfig(file, await opts({ state: new MemoryStateStore() }));
    expect(mem.ok).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['awg.yaml', 'list.txt', 'state']);
  });

  it('a file that is not there, or a platform that fails to load, is an invalid-config error', async () => {
    const missing = await readConfig(join(dir, 'none.yaml'), await opts());
    expect(missing.ok).toBe(false);
    const broken = await readConfig(
      join(dir, 'none.yaml'),
      await opts({
        platform: () => Promise.reject(new Error('no platform')),
      }),
    );
    expect(broken).toMatchObject({ ok: false, error: { kind: 'invalid-config' } });
  });
});
