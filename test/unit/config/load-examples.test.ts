/**
 * Every shipped example must load with zero errors and resolve its secrets; YAML snippets in
 * the README/docs marked `# example` must parse too.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { loadConfigText } from '../../../src/config/load.js';
import { checkSecrets } from '../../../src/config/secrets.js';
import { linuxDesired } from '../../helpers/desired.js';
import { plan } from '../../../src/reconciler/plan.js';
import { formatIssue, type Issue } from '../../../src/errors.js';

const root = resolve(import.meta.dirname, '../../..');
const examplesDir = join(root, 'examples');
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

const errorsOf = (issues: Issue[]) => issues.filter((i) => i.severity === 'error');

describe('examples/', () => {
  it('ships the documented examples', () => {
    expect(examples).toEqual(
      expect.arrayContaining([
        'minimal.yaml',
        'wireguard-full-tunnel.yaml',
        'amneziawg-split.yaml',
        'multi-tunnel-socks-killswitch.yaml',
      ]),
    );
  });

  for (const name of examples) {
    describe(name, () => {
      const file = join(examplesDir, name);
      const text = readFileSync(file, 'utf8');

      it('starts with the yaml-language-server schema modeline', () => {
        expect(text.split('\n')[0]).toBe(
          '# yaml-language-server: $schema=../schema/config.schema.json',
        );
      });

      it('loads with zero errors', () => {
        const r = loadConfigText(text, file);
        expect(errorsOf(r.issues).map(formatIssue)).toEqual([]);
        expect(r.config).toBeDefined();
      });

      it('resolves every secret (keys are valid base64 32-byte keys)', () => {
        const r = loadConfigText(text, file);
        const s = checkSecrets(r.config!, { configFile: file, env: {} }, r.positions);
        expect(errorsOf(s.issues).map(formatIssue)).toEqual([]);
        // only the permission warning is acceptable (git does not track chmod 600)
        for (const i of s.issues) expect(i.message).toMatch(/readable by group\/others/);
        expect(s.values.size).toBeGreaterThan(0);
        for (const [path, v] of s.values)
          if (!path.endsWith('password')) expect(Buffer.from(v, 'base64')).toHaveLength(32);
      });

      it('validates against the published editor schema (schema/config.schema.json)', () => {
        const schemaFile = join(root, 'schema', 'config.schema.json');
        // the schema is committed (and checked for staleness): a missing one is a failure
        expect(existsSync(schemaFile), `${schemaFile} is missing (npm run gen)`).toBe(true);
        const validate = new Ajv2020({ allErrors: true, strict: false }).compile(
          JSON.parse(readFileSync(schemaFile, 'utf8')) as object,
        );
        const ok = validate(parseYaml(text));
        expect(validate.errors ?? []).toEqual([]);
        expect(ok).toBe(true);
      });

      it('builds a desired state and an initial plan', () => {
        const r = loadConfigText(text, file);
        const s = checkSecrets(r.config!, { configFile: file, env: {} });
        const d = linuxDesired(r.config!, { facts: { cgroupNftPrefix: '' }, secrets: s.values });
        const p = plan(d, { resources: [], foreign: [] });
        expect(p.changes.length).toBe(d.resources.length);
        expect(p.changes.every((c) => c.action === 'create' && c.cause === 'initial')).toBe(true);
        // secret values never reach the plan
        const json = JSON.stringify(p);
        for (const v of s.values.values()) expect(json).not.toContain(v);
      });
    });
  }

  it('every peer public key in the examples is a valid 32-byte base64 key', () => {
    for (const name of examples) {
      const r = loadConfigText(
        readFileSync(join(examplesDir, name), 'utf8'),
        join(examplesDir, name),
      );
      for (const t of Object.values(r.config!.tunnels)) {
        if (t.type !== 'wireguard' && t.type !== 'amneziawg') continue;
        for (const p of t.peers) expect(Buffer.from(p.publicKey, 'base64')).toHaveLength(32);
      }
    }
  });

  it('the demo keys directory has a README marking them as demo keys', () => {
    const readme = readFileSync(join(examplesDir, 'keys', 'README.md'), 'utf8');
    expect(readme).toMatch(/demo keys/i);
  });
});

// Documentation snippets are checked by test/unit/readme.test.ts (every ```yaml block with `version:`).
