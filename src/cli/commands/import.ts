import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { importWgQuick, type SecretFile } from '../../config/import/index.js';
import { looksLikeVpnKey } from '../../config/import/vpn-key.js';
import { printIssues, messageText, type Io } from '../output.js';
import { LIMITS, readTextFile } from '../../util/files.js';

export interface ImportOptions {
  /** a .conf file, a file holding a vpn:// key, `-` (stdin) or the `vpn://…` key itself */
  file: string;
  output?: string;
  name?: string;
  type?: 'wireguard' | 'amneziawg';
  keyFile?: boolean;
  /** vpn:// keys: import only this container */
  container?: string;
  /** stdin for `-` (tests pass their own) */
  stdin?: () => Promise<string>;
}

/** Read all of stdin, at most `max` bytes. */
async function readStdin(max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new Error(`more than ${max} bytes on stdin`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * wg-quick / awg-quick INI, or an AmneziaVPN vpn:// key (argument, file or stdin) → YAML.
 * exit 0 ok (warnings on stderr), 1 invalid input; nothing is written on an error.
 */
export async function importCommand(io: Io, o: ImportOptions): Promise<number> {
  let text: string;
  /** what issues name: the file, or what stands for a key given otherwise */
  let label = o.file;
  // a key as the argument: `vpn://…`, or bare base64url that names no file (never quoted)
  const literal =
    /^vpn:\/\//i.test(o.file.trim()) ||
    (o.file !== '-' && !existsSync(o.file) && looksLikeVpnKey(o.file));
  try {
    if (literal) {
      text = o.file;
      label = 'vpn-key';
    } else if (o.file === '-') {
      text = await (o.stdin ?? (() => readStdin(LIMITS.ini)))();
      label = 'stdin';
    } else {
      // a regular file of at most LIMITS.ini bytes: a FIFO or /dev/zero is refused at once
      text = await readTextFile(o.file, { maxBytes: LIMITS.ini });
    }
  } catch (e) {
    io.err(`${literal ? 'vpn-key' : o.file}: cannot read: ${(e as Error).message}\n`);
    return 1;
  }
  const vpn = await import('../../config/import/vpn.js');
  const isKey = literal || looksLikeVpnKey(text) || /^\s*\{/.test(text);
  if (!isKey && o.container !== undefined) {
    io.err(`${label}: --container is for vpn:// keys; this is a wg-quick file\n`);
    return 1;
  }
  const common = {
    name: o.name,
    type: o.type,
    keyMode: (o.keyFile ? 'file' : 'inline') as 'file' | 'inline',
  };
  let yaml: string;
  let ok: boolean;
  let secretFiles: SecretFile[];
  let made: string;
  if (isKey) {
    const r = vpn.importVpnKey(text, {
      ...common,
      file: label,
      container: o.container,
      nameHint: literal || o.file === '-' ? undefined : basename(o.file).replace(/\.[^.]*$/, ''),
    });
    printIssues(io, r.issues);
    for (const n of r.notes) io.err(`${messageText(`${label}: note: ${n}`)}\n`);
    ({ yaml, ok, secretFiles } = r);
    made = r.tunnels.map((t) => `${t.name} from ${t.container || 'its wg-quick file'}`).join(', ');
    made = r.tunnels.length > 1 ? `tunnels ${made}` : `tunnel ${made}`;
  } else {
    const r = importWgQuick(text, { ...common, file: label });
    printIssues(io, r.issues);
    ({ yaml, ok, secretFiles } = r);
    made = `tunnel ${r.tunnelName}`;
  }
  if (!ok) {
    io.err(`${label}: not imported\n`);
    return 1;
  }
  if (o.output) {
    const dir = dirname(o.output);
    for (const s of secretFiles)
      await writeFile(join(dir, s.file), s.content, { mode: 0o600, flag: 'wx' });
    await writeFile(o.output, yaml, { flag: 'wx' });
    io.err(
      `wrote ${o.output} (${made})${secretFiles.length ? ` and ${secretFiles.map((s) => s.file).join(', ')} (mode 600)` : ''}\n`,
    );
  } else {
    if (secretFiles.length) {
      io.err('--key-file needs -o/--output (key files are written next to the YAML)\n');
      return 1;
    }
    io.out(yaml);
  }
  return 0;
}
