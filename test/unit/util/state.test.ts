/**
 * Crash-safe state: records are replaced whole (temp file, fsync, rename, fsync of the
 * directory) and an unusable record — torn, empty, not JSON, a symlink, the wrong shape — is
 * moved aside to `<key>.json.corrupt-<timestamp>` and reported, never thrown at the caller.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import {
  readRegularFileSync,
  writeFileAtomic,
  writeFileAtomicSync,
} from '../../../src/util/files.js';
import {
  appliedCopy,
  describeCorrupt,
  FileStateStore,
  type CorruptState,
} from '../../../src/util/state.js';

let dir: string;
let seen: CorruptState[];
let store: FileStateStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-state-'));
  seen = [];
  store = new FileStateStore(dir, { onCorrupt: (c) => seen.push(c) });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const RECORD = {
  configFile: '/etc/awg.yaml',
  appliedAt: '2026-01-01T00:00:00Z',
  claims: DEFAULT_CLAIMS,
  resources: [],
  outcome: 'converged',
};

describe('FileStateStore', () => {
  it('round-trips a record at mode 0600 and leaves no temporary file behind', () => {
    store.set('applied', RECORD);
    expect(store.get('applied')).toEqual(RECORD);
    expect(statSync(join(dir, 'applied.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['applied.json']);
    expect(store.keys()).toEqual(['applied']);
  });

  it.each([
    ['torn JSON', '{"configFile": "/etc/awg.yaml", "clai', /^not valid JSON: /],
    ['an empty file', '', /^empty$/],
    ['garbage', '\u0000\u0000\u0000', /^not valid JSON: /],
  ])('%s is moved aside and reported, and reads as absent', (_what, text, reason) => {
    writeFileSync(join(dir, 'applied.json'), text);
    expect(store.get('applied')).toBeUndefined();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.key).toBe('applied');
    expect(seen[0]!.reason).toMatch(reason);
    const moved = readdirSync(dir);
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatch(/^applied\.json\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
    expect(readFileSync(join(dir, moved[0]!), 'utf8')).toBe(text);
    expect(seen[0]!.movedTo).toBe(join(dir, moved[0]!));
    expect(describeCorrupt(seen[0]!)).toContain(`moved aside to ${join(dir, moved[0]!)}`);
    // the set-aside file is not a record any more: not listed, not reported twice
    expect(store.keys()).toEqual([]);
    expect(store.get('applied')).toBeUndefined();
    expect(seen).toHaveLength(1);
    // and a new record can be written in its place
    store.set('applied', RECORD);
    expect(store.get('applied')).toEqual(RECORD);
  });

  it('a symlink in place of a record is not followed: set aside', () => {
    writeFileSync(join(dir, 'elsewhere'), JSON.stringify(RECORD));
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'applied.json'));
    expect(store.get('applied')).toBeUndefined();
    expect(seen.map((c) => c.reason)).toEqual(['it is a symbolic link, not a regular file']);
    expect(existsSync(join(dir, 'applied.json'))).toBe(false);
  });

  it('a directory in place of a record is set aside, not thrown', () => {
    mkdirSync(join(dir, 'applied.json'));
    expect(store.get('applied')).toBeUndefined();
    expect(seen.map((c) => c.reason)).toEqual(['it is a directory, not a regular file']);
  });

  it('AppliedStore over files: a record of another shape is set aside, the claims survive', () => {
    const applied = new AppliedStore(store);
    const claims = { ...DEFAULT_CLAIMS, tableBase: 61000 };
    applied.save({ ...RECORD, claims });
    writeFileSync(join(dir, 'applied.json'), JSON.stringify({ hello: 1 }));
    expect(applied.load()).toBeUndefined();
    expect(seen.map((c) => `${c.key}: ${c.reason}`)).toEqual([
      'applied: not a record of awg apply',
    ]);
    expect(applied.claims()).toEqual(claims);
  });
});

describe('FileStateStore: recoveries and the copies in the applied record', () => {
  it('a recovery is reported once, naming both files, until the record is written or set aside again', () => {
    store.set('darwin-pf', { anchors: {} });
    writeFileSync(join(dir, 'darwin-pf.json'), '{"tok');
    expect(store.get('darwin-pf')).toBeUndefined();
    store.recovered('darwin-pf', 'applied', "PF's reference token 7");
    store.recovered('darwin-pf', 'applied', "PF's reference token 7");
    expect(seen.map(describeCorrupt)).toEqual([
      expect.stringMatching(/darwin-pf\.json is unusable \(not valid JSON: .*\); moved aside to/),
      `state record ${join(dir, 'darwin-pf.json')} was unusable; recovered from ${join(dir, 'applied.json')}: PF's reference token 7`,
    ]);
    store.set('darwin-pf', { anchors: {} });
    store.recovered('darwin-pf', 'applied', 'again');
    expect(seen).toHaveLength(3);
  });

  it("appliedCopy: a driver's copy, or undefined without one (no record, no owned map, an unusable record)", () => {
    expect(appliedCopy(store, 'dns')).toBeUndefined();
    store.set('applied', RECORD);
    expect(appliedCopy(store, 'dns')).toBeUndefined();
    store.set('applied', { ...RECORD, owned: { dns: { links: {} } } });
    expect(appliedCopy(store, 'dns')).toEqual({ links: {} });
    expect(appliedCopy(store, 'firewall')).toBeUndefined();
    writeFileSync(join(dir, 'applied.json'), 'garbage');
    expect(appliedCopy(store, 'dns')).toBeUndefined();
    expect(seen.map((c) => c.key)).toEqual(['applied']);
  });
});

describe('writeFileAtomic', () => {
  it('sets the exact mode whatever the umask (fchmod), replaces the file and a symlink in its place', async () => {
    const p = join(dir, 'resolv.conf');
    writeFileAtomicSync(p, 'one\n', { mode: 0o666 });
    expect(statSync(p).mode & 0o777).toBe(0o666);
    symlinkSync(p, join(dir, 'link'));
    await writeFileAtomic(join(dir, 'link'), 'two\n', { mode: 0o644 });
    expect(lstatSync(join(dir, 'link')).isFile()).toBe(true);
    expect(readFileSync(join(dir, 'link'), 'utf8')).toBe('two\n');
    expect(readFileSync(p, 'utf8')).toBe('one\n');
    expect(readdirSync(dir).sort()).toEqual(['link', 'resolv.conf']);
  });

  it('a failed write leaves the old file and no temporary file', () => {
    const p = join(dir, 'x');
    writeFileAtomicSync(p, 'old');
    expect(() => writeFileAtomicSync(join(dir, 'missing-dir', 'x'), 'new')).toThrow(/ENOENT/);
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['x']);
  });

  it('reads back what it wrote through the capped reader', () => {
    const p = join(dir, 'x');
    writeFileAtomicSync(p, 'a'.repeat(100));
    expect(readRegularFileSync(p, { maxBytes: 100 }).length).toBe(100);
    expect(() => readRegularFileSync(p, { maxBytes: 99 })).toThrow(
      `${p} is larger than the 99 bytes limit`,
    );
  });
});
