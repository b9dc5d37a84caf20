/**
 * The wire types under src/daemon/wire/generated/ are what proto-loader-gen-types makes of
 * proto/awg.proto today, with the daemon's loader options (run `npm run gen` after changing
 * either).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedWireTypes, loaderFlags, WIRE_TYPES_DIR } from '../../scripts/wire-types.js';

const dir = join(import.meta.dirname, '..', '..', WIRE_TYPES_DIR);
const files = await generatedWireTypes();

describe(`${WIRE_TYPES_DIR}/ is up to date (run \`npm run gen\`)`, () => {
  it('holds exactly the generated files', () => {
    const present = readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
      .sort();
    expect(present).toEqual(Object.keys(files).sort());
  });
  for (const [name, text] of Object.entries(files))
    it(name, () => {
      expect(readFileSync(join(dir, name), 'utf8')).toBe(text);
    });
  it("the generator's flags are the loader's options", () => {
    expect(
      loaderFlags({ keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true }),
    ).toEqual(['--longs=Number', '--enums=String', '--defaults', '--oneofs']);
    expect(() => loaderFlags({ longs: BigInt })).toThrow(/no proto-loader-gen-types flag/);
  });
});
