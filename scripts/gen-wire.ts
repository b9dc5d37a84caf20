import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generatedWireTypes, WIRE_TYPES_DIR } from './wire-types.js';

const root = join(new URL('.', import.meta.url).pathname, '..');
const dir = join(root, WIRE_TYPES_DIR);
const files = await generatedWireTypes();
// a message removed from the proto takes its file with it
rmSync(dir, { recursive: true, force: true });
for (const [name, text] of Object.entries(files)) {
  mkdirSync(dirname(join(dir, name)), { recursive: true });
  writeFileSync(join(dir, name), text);
}
console.log(`wrote ${WIRE_TYPES_DIR}/ (${Object.keys(files).length} files)`);
