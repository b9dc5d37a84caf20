/**
 * `awg import vpn://…`: an AmneziaVPN key → the YAML config model. The key is decoded
 * (vpn-key.ts), its containers read (vpn-doc.ts), and each container's wg-quick text goes
 * through the one .conf importer (importWgQuick): a container imports exactly as the
 * equivalent .conf does, with the same warnings and MTU advice, only the YAML's first
 * comment naming the key. Several containers make one tunnel each in one config; the key's
 * default container is the config's default. Pure, never throws: every problem is an issue.
 * No message quotes the key or a secret in it.
 */
import { parse as parseYaml, parseDocument, Pair, Scalar, YAMLMap } from 'yaml';
import type { Issue } from '../../errors.js';
import { Config, MAX_TUNNEL_NAME } from '../schema.js';
import type { ConfigInput } from '../schema.js';
import { checkSemantics } from '../semantic.js';
import { importWgQuick } from './index.js';
import type { ImportOptions, ImportResult, SecretFile } from './index.js';
import { suggestName } from './naming.js';
import { pathString } from './locations.js';
import { readVpnDoc, VPN_CONTAINERS } from './vpn-doc.js';
import type { DocNote, VpnContainer } from './vpn-doc.js';
import { decodeVpnKey, VpnKeyError } from './vpn-key.js';

export { looksLikeVpnKey, VPN_KEY_MAX_BYTES, VpnKeyError } from './vpn-key.js';

export interface VpnImportOptions extends Omit<ImportOptions, 'origin'> {
  /** import only this container (its name, e.g. amnezia-awg2) */
  container?: string | undefined;
  /** a name to derive tunnel names from when the key names none (the key file's base name) */
  nameHint?: string | undefined;
}

export interface VpnImportResult extends Omit<ImportResult, 'tunnelName'> {
  /** the tunnels made, with the container each came from */
  tunnels: { name: string; container: string }[];
  /** things to tell that are neither warnings nor errors (credentials dropped, …) */
  notes: string[];
}

/** container → the suffix of its tunnel's name when a key makes several */
const SUFFIX: Record<string, string> = {
  'amnezia-awg': 'awg',
  'amnezia-awg2': 'awg2',
  'amnezia-wireguard': 'wg',
};

/** Import an AmneziaVPN key (or its JSON, or a wg-quick text it carries). */
export function importVpnKey(text: string, opts: VpnImportOptions): VpnImportResult {
  try {
    return run(text, opts);
  } catch (e) {
    const message =
      e instanceof VpnKeyError
        ? e.message
        : `internal error while importing the key: ${e instanceof Error ? e.name : 'unknown'}`;
    return failed(opts.file, [{ file: opts.file, path: '', message, severity: 'error' }], []);
  }
}

function failed(file: string, issues: Issue[], notes: string[]): VpnImportResult {
  if (!issues.some((i) => i.severity === 'error'))
    issues.push({ file, path: '', message: 'nothing imported', severity: 'error' });
  return {
    yaml: '',
    config: { version: 1 },
    issues,
    secretFiles: [],
    tunnels: [],
    notes,
    ok: false,
  };
}

/** printable, one line, at most 60 characters: a value of the key in a YAML comment */
function printable(s: string): string {
  const t = s.replace(/[\p{C}\u2028\u2029]/gu, '?').trim();
  return t.length > 60 ? `${t.slice(0, 60)}…` : t;
}

function run(text: string, opts: VpnImportOptions): VpnImportResult {
  const file = opts.file;
  const decoded = decodeVpnKey(text);
  const notes: string[] = [];
  const issues: Issue[] = [];
  const base = {
    file,
    type: opts.type,
    keyMode: opts.keyMode ?? 'inline',
    ...(opts.schemaUrl !== undefined ? { schemaUrl: opts.schemaUrl } : {}),
  };
  if (decoded.kind === 'ini') {
    if (opts.container !== undefined)
      return failed(
        file,
        [
          {
            file,
            path: '',
            severity: 'error',
            message: `--container ${opts.container}: the key holds a wg-quick file, not containers`,
          },
        ],
        notes,
      );
    const name = opts.name ?? pickName([opts.nameHint]);
    const r = importWgQuick(decoded.text, {
      ...base,
      name,
      origin: 'Imported from an AmneziaVPN key holding a wg-quick file by `awg import`.',
    });
    return { ...r, tunnels: r.ok ? [{ name: r.tunnelName, container: '' }] : [], notes };
  }
  if (decoded.headerMismatch)
    notes.push(
      `the key's length header says ${decoded.headerMismatch.declared} bytes but its data inflates to ${decoded.headerMismatch.actual}; AmneziaVPN reads the header as a size hint and accepts this, so does awg`,
    );
  const doc = readVpnDoc(decoded.doc);
  const docIssue = (n: DocNote): void => {
    if (n.severity === 'note') notes.push(n.path ? `${n.path}: ${n.message}` : n.message);
    else issues.push({ file, path: n.path, message: n.message, severity: n.severity });
  };
  doc.notes.forEach(docIssue);

  let chosen: VpnContainer[];
  if (opts.container !== undefined) {
    const c = doc.containers.find((x) => x.name === opts.container);
    if (!c)
      return failed(
        file,
        [
          ...issues,
          {
            file,
            path: '',
            severity: 'error',
            message: `--container ${opts.container}: the key has no such container (it has ${doc.containers.map((x) => x.name).join(', ') || 'none'})`,
          },
        ],
        notes,
      );
    if (c.skip)
      return failed(
        file,
        [...issues, { file, path: `containers[${c.index}]`, severity: 'error', message: c.skip }],
        notes,
      );
    chosen = [c];
  } else {
    chosen = doc.containers.filter((c) => c.ini !== undefined);
    for (const c of doc.containers)
      if (c.skip) {
        const issue = { file, path: `containers[${c.index}]`, message: c.skip };
        if (chosen.length === 0) issues.push({ ...issue, severity: 'error' });
        else notes.push(`${issue.path}: ${issue.message}: skipped`);
      }
    if (chosen.length === 0)
      return failed(
        file,
        [
          ...issues,
          {
            file,
            path: '',
            severity: 'error',
            message: 'no usable container in the key: nothing to import',
          },
        ],
        notes,
      );
  }
  // the default container first: it becomes the config's default
  chosen.sort((a, b) => Number(b.isDefault) - Number(a.isDefault) || a.index - b.index);

  const named =
    opts.name === undefined ? keyName(doc.description, doc.hostName, opts.nameHint) : undefined;
  const stem = opts.name ?? named!.name;
  if (named) notes.push(`tunnel named "${stem}" after ${named.from}; choose another with --name`);
  const names = tunnelNames(stem, chosen, opts.name !== undefined);
  const results: { c: VpnContainer; r: ImportResult }[] = [];
  chosen.forEach((c, i) => {
    c.notes.forEach(docIssue);
    const desc = doc.description !== undefined ? `"${printable(doc.description)}", ` : '';
    const r = importWgQuick(c.ini!, {
      ...base,
      file: `${file}[${c.name}${c.synthesized ? ', from its fields' : ''}]`,
      name: names[i]!,
      origin: `Imported from an AmneziaVPN key (${desc}container ${c.name}) by \`awg import\`.`,
    });
    results.push({ c, r });
    issues.push(...r.issues);
  });
  if (results.some(({ r }) => !r.ok)) return failed(file, issues, notes);

  const tunnels = results.map(({ c, r }) => ({ name: r.tunnelName, container: c.name }));
  const secretFiles: SecretFile[] = results.flatMap(({ r }) => r.secretFiles);
  if (results.length === 1) {
    const r = results[0]!.r;
    return { yaml: r.yaml, config: r.config, issues, secretFiles, tunnels, notes, ok: true };
  }
  const yaml = merge(results);
  const config = parseYaml(yaml) as ConfigInput;
  const check = Config.safeParse(config);
  if (!check.success)
    for (const z of check.error.issues)
      issues.push({
        file,
        path: pathString(z.path.filter((k): k is string | number => typeof k !== 'symbol')),
        message: z.message,
        severity: 'error',
      });
  else
    for (const f of checkSemantics(check.data))
      issues.push({ file, path: pathString(f.path), message: f.message, severity: f.severity });
  const ok = !issues.some((i) => i.severity === 'error');
  return ok
    ? { yaml, config, issues, secretFiles, tunnels, notes, ok }
    : failed(file, issues, notes);
}

/** a tunnel name from the first candidate that gives one (else "amnezia") */
function pickName(candidates: (string | undefined)[]): string {
  for (const c of candidates) {
    const n = c === undefined ? undefined : suggestName(c);
    if (n !== undefined) return n;
  }
  return 'amnezia';
}

/**
 * The tunnel name of a key: its description (the server's name in the app) when that is a
 * name or gives one of 2+ characters ("Сервер 2" gives only "2"); else its host name unless
 * that is an address; else the key file's name; else "amnezia".
 */
function keyName(
  description?: string,
  host?: string,
  hint?: string,
): { name: string; from: string } {
  const quoted = (s: string) => `"${printable(s)}"`;
  const d = description === undefined ? undefined : suggestName(description);
  if (d !== undefined && (d === description || d.length >= 2))
    return { name: d, from: `the key's description ${quoted(description!)}` };
  const h = host !== undefined && !/^[0-9.]+$|:/.test(host) ? host : undefined;
  const name = pickName([h, hint, description]);
  const from =
    h !== undefined && name === suggestName(h)
      ? `the key's host ${quoted(h)}`
      : hint !== undefined && name === suggestName(hint)
        ? `the file name ${quoted(hint)}`
        : description !== undefined && name === suggestName(description)
          ? `the key's description ${quoted(description)}`
          : 'nothing in the key (no usable description or host name)';
  return { name, from };
}

/** one name per container: the stem alone for one, stem-awg / stem-awg2 / stem-wg for several */
function tunnelNames(stem: string, chosen: VpnContainer[], explicit: boolean): string[] {
  if (chosen.length === 1) return [stem];
  const used = new Set<string>();
  return chosen.map((c) => {
    const suffix = SUFFIX[c.name] ?? 'c';
    for (let n = 1; ; n++) {
      const tail = n === 1 ? suffix : `${suffix}${n}`;
      const head = stem.slice(0, MAX_TUNNEL_NAME - tail.length - 1).replace(/[-_]+$/, '');
      const name = head === '' ? tail : `${head}-${tail}`;
      if (!used.has(name) && (explicit || name.length <= MAX_TUNNEL_NAME)) {
        used.add(name);
        return name;
      }
    }
  });
}

/** the first result's YAML with the other tunnels added under `tunnels` (comments kept) */
function merge(results: { c: VpnContainer; r: ImportResult }[]): string {
  const main = parseDocument(results[0]!.r.yaml);
  const tunnels = main.get('tunnels', true) as YAMLMap;
  for (const { c, r } of results.slice(1)) {
    const other = parseDocument(r.yaml);
    const node = other.getIn(['tunnels', r.tunnelName], true);
    const key = new Scalar(r.tunnelName);
    key.commentBefore = ` From the key's container ${c.name} (${VPN_CONTAINERS[c.name as keyof typeof VPN_CONTAINERS]?.label ?? c.name}); the default is ${results[0]!.r.tunnelName}: rules can send apps here.`;
    tunnels.items.push(new Pair(key, node));
  }
  return main.toString({ lineWidth: 0 });
}
