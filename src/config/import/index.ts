/**
 * `awg import`: wg-quick / awg-quick INI → the YAML config model. Pure: no I/O.
 *
 * Contract: never throws; every problem comes back as a located issue. When no issue has
 * severity `error`, `yaml` validates with `Config.safeParse(YAML.parse(yaml))`. With
 * keyMode `file`, secrets become `{file}` references and their material is returned in
 * `secretFiles` for the caller to write (mode 0600) next to the YAML.
 */
import { parse as parseYaml } from 'yaml';
import type { Issue } from '../../errors.js';
import { Config } from '../schema.js';
import type { ConfigInput } from '../schema.js';
import { parseIni } from '../ini.js';
import { defaultMtu, fittingMtu, PATH_MTU, TRANSPORT_OVERHEAD } from '../mtu.js';
import { checkSemantics } from '../semantic.js';
import { laterClaims } from './claims.js';
import { Importer } from './importer.js';
import type { SecretFile } from './importer.js';
import { AWG3_FIELDS, AWG_H, AWG_I, AWG_SIMPLE } from './keys.js';
import { locate, pathString } from './locations.js';
import { chooseTunnelName } from './naming.js';
import type { NameChoice } from './naming.js';
import { render } from './render.js';
import { wgQuickRouting } from './routing.js';

export type { SecretFile } from './importer.js';
export { chooseTunnelName, nameFromFile, suggestName, tunnelNameProblem } from './naming.js';
export { laterClaims } from './claims.js';
export { pathString } from './locations.js';
export { scrubSecrets, SECRET_LEFT_OUT } from './scrub.js';

export const SCHEMA_URL = 'https://unpkg.com/awg/schema/config.schema.json';

export interface ImportOptions {
  /** source file name, used in issues and to derive the tunnel name */
  file: string;
  name?: string | undefined;
  /** force the tunnel type; default: amneziawg when any AmneziaWG key is present */
  type?: 'wireguard' | 'amneziawg' | undefined;
  keyMode?: 'inline' | 'file';
  schemaUrl?: string;
  /** the YAML's "Imported from …" line, when the text came from elsewhere than `file` */
  origin?: string | undefined;
}

export interface ImportResult {
  yaml: string;
  config: ConfigInput;
  issues: Issue[];
  secretFiles: SecretFile[];
  tunnelName: string;
  /** no issue with severity error */
  ok: boolean;
}

/** Convert one wg-quick / awg-quick file. See the module comment for the contract. */
export function importWgQuick(text: string, opts: ImportOptions): ImportResult {
  const file = opts.file;
  const choice = chooseTunnelName(file, opts.name);
  const empty: ConfigInput = { version: 1 };
  try {
    return run(text, opts, choice);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return {
      yaml: '',
      config: empty,
      issues: [
        { file, path: '', message: `internal error while importing: ${msg}`, severity: 'error' },
      ],
      secretFiles: [],
      tunnelName: choice.name,
      ok: false,
    };
  }
}

function run(text: string, opts: ImportOptions, choice: NameChoice): ImportResult {
  const file = opts.file;
  const name = choice.name;
  const { doc: ini, issues: syntax } = parseIni(text, file);
  const im = new Importer(file, name, opts.keyMode ?? 'inline');
  if (choice.issue)
    im.err(undefined, choice.issue.path, choice.issue.message, choice.issue.severity);
  im.issues.push(...syntax);

  const ifaces = ini.sections.filter((s) => s.kind === 'interface');
  const peers = ini.sections.filter((s) => s.kind === 'peer');
  if (ifaces.length === 0) im.err({ line: 1, col: 1 }, im.base(), 'no [Interface] section');
  for (const extra of ifaces.slice(1))
    im.err(
      extra,
      im.base(),
      `second [Interface] section (the first is on line ${ifaces[0]!.line})`,
    );
  if (ifaces[0]) im.interface(ifaces[0]);
  im.lost = laterClaims(peers);
  peers.forEach((p, i) => im.peer(p, i));
  if (peers.length === 0)
    im.err(
      ifaces[0] ?? { line: 1, col: 1 },
      [...im.base(), 'peers'],
      'no [Peer] section: a tunnel needs at least one peer',
    );
  const keys = new Map<string, number>();
  im.peers.forEach((p, i) => {
    const k = p.publicKey as string | undefined;
    if (k === undefined) return;
    const prev = keys.get(k);
    if (prev !== undefined)
      im.err(
        peers[i],
        [...im.base(), 'peers', i, 'publicKey'],
        `peer with the same PublicKey as the peer on line ${peers[prev]!.line}`,
      );
    else keys.set(k, i);
  });

  const isAwg = im.awgKeys.length > 0;
  const type = opts.type ?? (isAwg ? 'amneziawg' : 'wireguard');
  if (type === 'wireguard')
    for (const e of im.awgKeys)
      im.err(
        e,
        im.base(),
        e.lower === 'persistentkeepalive'
          ? `${e.key} range "${e.value}" is AmneziaWG 3.x but the tunnel type is wireguard, which keeps one interval`
          : `${e.key} is an AmneziaWG key but the tunnel type is wireguard`,
      );

  const tunnel: Record<string, unknown> = { type };
  for (const k of ['privateKey', 'addresses', 'dns', 'mtu', 'listenPort'] as const)
    if (im.tunnel[k] !== undefined) tunnel[k] = im.tunnel[k];
  if (type === 'amneziawg') {
    const o: Record<string, unknown> = {};
    for (const k of [...AWG_SIMPLE, ...AWG_H, ...AWG_I, ...AWG3_FIELDS])
      if (im.obfuscation[k] !== undefined) o[k] = im.obfuscation[k];
    tunnel.obfuscation = o;
    // no MTU: awg-quick took the route's MTU − 80 (1420 on Ethernet), which leaves no room
    // for S4; the YAML leaves mtu out too, and awg's default makes that room
    const s4 = o.s4 as number | undefined;
    // (past the default's floor a warning at s4 says more)
    if (tunnel.mtu === undefined && s4 && defaultMtu({ obfuscation: { s4 } }) === fittingMtu(s4))
      im.notes.push({
        path: [...im.base(), 'obfuscation', 's4'],
        before: [
          ` No MTU in the file: awg's default, ${fittingMtu(0)} - s4 = ${fittingMtu(s4)}, makes transport datagrams`,
          ` (MTU + ${TRANSPORT_OVERHEAD} + s4 bytes) fit a ${PATH_MTU}-byte path; awg-quick used its link MTU - 80.`,
        ],
      });
  }
  tunnel.peers = im.peers;

  const route = wgQuickRouting(im, name);
  const config: Record<string, unknown> = {
    version: 1,
    tunnels: { [name]: tunnel },
    ...route.config,
  };
  const defaultNote = route.note;
  if (route.config.dns !== undefined) {
    const at = im.locs.get(pathString([...im.base(), 'dns']));
    if (at) im.locs.set('dns', at);
  }

  const yaml = render(
    config,
    im.notes,
    opts.schemaUrl ?? SCHEMA_URL,
    ini.tailComments,
    defaultNote,
    file,
    opts.origin,
  );
  const issues = im.issues;
  if (!issues.some((i) => i.severity === 'error')) {
    // The contract: what we emit loads. Schema and cross-field findings, located in the INI.
    const check = Config.safeParse(parseYaml(yaml));
    if (!check.success) {
      for (const z of check.error.issues) {
        const p = pathString(z.path.filter((k): k is string | number => typeof k !== 'symbol'));
        im.err(locate(im.locs, p), [p], z.message);
      }
    } else {
      for (const f of checkSemantics(check.data))
        im.err(locate(im.locs, pathString(f.path)), f.path, f.message, f.severity);
    }
  }
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  return {
    yaml,
    config: config as ConfigInput,
    issues,
    secretFiles: im.secretFiles,
    tunnelName: name,
    ok: !issues.some((i) => i.severity === 'error'),
  };
}
