import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { importWgQuick } from '../../config/import/index.js';
import { printIssues, type Io } from '../output.js';
import { LIMITS, readTextFile } from '../../util/files.js';

export interface ImportOptions {
  file: string;
  output?: string;
  name?: string;
  type?: 'wireguard' | 'amneziawg';
  keyFile?: boolean;
}

/** wg-quick / awg-quick INI → YAML. exit 0 ok (warnings on stderr), 1 invalid input. */
export async function importCommand(io: Io, o: ImportOptions): Promise<number> {
  let text: string;
  try {
    // a regular file of at most LIMITS.ini bytes: a FIFO or /dev/zero is refused at once
    text = await readTextFile(o.file, { maxBytes: LIMITS.ini });
  } catch (e) {
    io.err(`${o.file}: cannot read: ${(e as Error).message}\n`);
    return 1;
  }
  const r = importWgQuick(text, {
    file: o.file,
    name: o.name,
    type: o.type,
    keyMode: o.keyFile ? 'file' : 'inline',
  });
  printIssues(io, r.issues);
  if (!r.ok) {
    io.err(`${o.file}: not imported\n`);
    return 1;
  }
  if (o.output) {
    const dir = dirname(o.output);
    for (const s of r.secretFiles)
      await writeFile(join(dir, s.file), s.content, { mode: 0o600, flag: 'wx' });
    await writeFile(o.output, r.yaml, { flag: 'wx' });
    io.err(
      `wrote ${o.output} (tunnel ${r.tunnelName})${r.secretFiles.length ? ` and ${r.secretFiles.map((s) => s.file).join(', ')} (mode 600)` : ''}\n`,
    );
  } else {
    if (r.secretFiles.length) {
      io.err('--key-file needs -o/--output (key files are written next to the YAML)\n');
      return 1;
    }
    io.out(r.yaml);
  }
  return 0;
}
