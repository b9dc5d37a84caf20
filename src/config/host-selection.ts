/**
 * Which host a config's overlays are selected for: the name, labels and OS given on the
 * command line (`--host`, `--labels`, `--labels-file`, `--os`), else this machine's
 * (os.hostname(), /etc/awg/labels.yaml when it exists, process.platform).
 */
import { hostname } from 'node:os';
import { parseDocument } from 'yaml';
import { AwgError } from '../errors.js';
import { LIMITS, readTextFileSync } from '../util/files.js';
import { LabelKey, type HostSelection } from './overlay.js';

export const DEFAULT_LABELS_FILE = '/etc/awg/labels.yaml';

export interface SelectionFlags {
  host?: string;
  /** `k=v,k=v` */
  labels?: string;
  labelsFile?: string;
  os?: string;
}

const LABEL_VALUE = /^[A-Za-z0-9_./-]{0,63}$/;

function checkLabel(k: string, v: string, where: string): void {
  if (!LabelKey.safeParse(k).success)
    throw new AwgError(
      'invalid-config',
      `${where}: label name "${k}" is not valid (letters, digits, ".", "_", "/", "-"; at most 63)`,
    );
  if (!LABEL_VALUE.test(v))
    throw new AwgError(
      'invalid-config',
      `${where}: the value of label "${k}" is not valid (letters, digits, ".", "_", "/", "-"; at most 63)`,
    );
}

/** `role=web,site=eu` → labels. */
export function parseLabelList(s: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of s.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new AwgError('invalid-config', `--labels: "${part}" is not name=value`);
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    checkLabel(k, v, '--labels');
    out[k] = v;
  }
  return out;
}

/** A labels file: a YAML mapping of label name to a string (numbers and booleans as written). */
export function parseLabelsFile(text: string, file: string): Record<string, string> {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length)
    throw new AwgError('invalid-config', `${file}: YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const raw: unknown = doc.toJS({ maxAliasCount: 0 });
  if (raw === null || raw === undefined) return Object.create(null) as Record<string, string>;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new AwgError('invalid-config', `${file}: labels must be a mapping of name: value`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      throw new AwgError('invalid-config', `${file}: label "${k}" must be a single value`);
    checkLabel(k, String(v), file);
    out[k] = String(v);
  }
  return out;
}

function readLabels(file: string, required: boolean): Record<string, string> {
  let text: string;
  try {
    text = readTextFileSync(file, { maxBytes: LIMITS.config });
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT')
      return Object.create(null) as Record<string, string>;
    throw new AwgError(
      'invalid-config',
      `labels file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`,
    );
  }
  return parseLabelsFile(text, file);
}

/** The selection the flags describe, this machine's where a flag is absent. Throws AwgError on bad flags. */
export function selectionFrom(f: SelectionFlags = {}): HostSelection {
  const host = f.host ?? hostname();
  if (host.length === 0 || host.length > 255 || /[\s/\\]/.test(host))
    throw new AwgError('invalid-config', `--host: "${host}" is not a host name`);
  const os = f.os ?? process.platform;
  if (f.os !== undefined && f.os !== 'linux' && f.os !== 'darwin')
    throw new AwgError('invalid-config', `--os: "${f.os}" is not linux or darwin`);
  const labels =
    f.labels !== undefined
      ? parseLabelList(f.labels)
      : readLabels(f.labelsFile ?? DEFAULT_LABELS_FILE, f.labelsFile !== undefined);
  return { host, labels, os };
}

/** This machine: its host name, /etc/awg/labels.yaml if present, its OS. */
export function localSelection(): HostSelection {
  return selectionFrom({});
}

export function describeSelection(s: HostSelection): string {
  const labels = Object.entries(s.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `host ${s.host}, os ${s.os}${labels ? `, labels ${labels}` : ', no labels'}`;
}
