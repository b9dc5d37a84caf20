import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generatedSchemaFiles } from './schemas.js';

const dir = join(new URL('.', import.meta.url).pathname, '..', 'schema');
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(await generatedSchemaFiles())) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote schema/${name}`);
}
