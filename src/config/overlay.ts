/**
 * One repository, many hosts: a base config names overlays, each with a selector (`when`:
 * host name globs, labels, OS) and a partial config (`file:` or inline `config:`). The
 * overlays whose selector matches the host are merged onto the base in the order listed.
 *
 * Merge semantics (docs/fleet.md, test/unit/config/overlay.test.ts):
 * - mapping onto mapping: merged key by key, recursively; an overlay value `null` removes the
 *   key (as in a JSON merge patch, RFC 7386) — except a secret (`privateKey`, `presharedKey`,
 *   `headerProtectionKey`, `password`) and a mapping whose `type` the overlay changes (a
 *   tunnel turned from wireguard into socks5), which are replaced whole;
 * - the top-level `rules` list merges by rule name: an overlay rule whose `name` is a base
 *   rule's replaces that rule where it stands (the whole rule); a new name is appended, or
 *   inserted before the rule named by its `before:`; `{name: X, remove: true}` removes X;
 * - every other value (scalars, other lists such as peers or allowedIPs) is replaced whole.
 *
 * Every merged value remembers the file and path it came from, so a validation error in the
 * effective config points at the overlay line that caused it (MergedPositions).
 */
import picomatch from 'picomatch';
import * as z from 'zod';
import { ItemName } from './schema-values.js';
import type { PathKey, Pos, SourcePositions } from './positions.js';

export interface HostSelection {
  /** host name the `hosts` globs match (case-insensitive) */
  host: string;
  labels: Readonly<Record<string, string>>;
  /** `linux` or `darwin` (process.platform) */
  os: string;
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
const LabelValue = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9_./-]*$/, 'a label value holds letters, digits, ".", "_", "/" and "-"');
export const LabelKey = z
  .string()
  .regex(
    LABEL_KEY,
    'a label name starts with a letter or digit and holds letters, digits, ".", "_", "/" and "-" (at most 63)',
  );

export const OverlayWhen = z
  .strictObject({
    hosts: z.array(z.string().min(1).max(255)).min(1).max(256).optional().meta({
      description:
        "Host name globs (`*`, `?`, `[a-z]`, `{a,b}`), compared case-insensitively; the overlay applies when any matches. The host name is `--host` or the machine's.",
    }),
    labels: z
      .record(LabelKey, z.union([LabelValue, z.array(LabelValue).min(1).max(64)]))
      .optional()
      .meta({
        description:
          'Every label named must be set on the host to this value (or to one of these values). Labels come from `--labels k=v,...`, else `--labels-file`, else /etc/awg/labels.yaml.',
      }),
    os: z
      .enum(['linux', 'darwin'])
      .optional()
      .meta({ description: "Only on this OS (`--os`, default this machine's)." }),
  })
  .meta({
    id: 'OverlayWhen',
    description: 'Selector: all conditions given must hold; `{}` matches every host.',
  });

export const Overlay = z
  .strictObject({
    name: ItemName().optional().meta({
      description:
        'Shown by `awg render` and in errors; defaults to the file name or overlay-<index>.',
    }),
    when: OverlayWhen,
    file: z.string().min(1).max(4096).optional().meta({
      description:
        'A YAML file with a partial config (relative paths are relative to this config file). It may not name overlays itself.',
    }),
    config: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'The partial config inline, instead of `file`.' }),
  })
  .refine((o) => (o.file === undefined) !== (o.config === undefined), {
    error: 'give exactly one of `file` or `config`',
  })
  .meta({
    id: 'Overlay',
    description:
      'A partial config merged onto this one on the hosts its `when` selects (docs/fleet.md).',
  });
export type Overlay = z.infer<typeof Overlay>;

export const Overlays = z.array(Overlay).max(256).meta({
  description:
    'Per-host overlays, merged in this order onto the rest of this file on every host whose selector matches (docs/fleet.md). Only a base config may have them.',
});

export function overlayName(o: Overlay, index: number): string {
  if (o.name) return o.name;
  if (o.file) return o.file.replace(/^.*\//, '').replace(/\.ya?ml$/i, '');
  return `overlay-${index}`;
}

/** Does this selector pick the host? All given conditions must hold. */
export function matches(when: z.infer<typeof OverlayWhen>, sel: HostSelection): boolean {
  if (when.os !== undefined && when.os !== sel.os) return false;
  if (
    when.hosts &&
    !when.hosts.some((g) => picomatch.isMatch(sel.host, g, { nocase: true, dot: true }))
  )
    return false;
  for (const [k, want] of Object.entries(when.labels ?? {})) {
    const have = Object.hasOwn(sel.labels, k) ? sel.labels[k] : undefined;
    if (have === undefined) return false;
    if (Array.isArray(want) ? !want.includes(have) : want !== have) return false;
  }
  return true;
}

// ---------------------------------------------------------------- merging with provenance

/** Where a merged value came from: source index (0 = the base file) and its path there. */
interface Origin {
  src: number;
  path: PathKey[];
}
/** A merged node; `kids` only where the node was merged from several sources. */
interface OriginNode {
  origin: Origin;
  kids?: Map<string, OriginNode> | undefined;
}

export interface MergeIssue {
  src: number;
  path: PathKey[];
  message: string;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
/** secrets are one of `{file:}`, `{env:}`, `{age:}` or a string: an overlay's secret replaces the base's whole */
const SECRET_KEYS = new Set(['privateKey', 'presharedKey', 'headerProtectionKey', 'password']);
/** mappings replaced whole, not merged: secrets, and a tunnel whose `type` the overlay changes */
const atomic = (k: string, base: Record<string, unknown>, over: Record<string, unknown>): boolean =>
  SECRET_KEYS.has(k) ||
  (over.type !== undefined && base.type !== undefined && over.type !== base.type);
const leaf = (src: number, path: PathKey[]): OriginNode => ({ origin: { src, path } });
const kidOf = (n: OriginNode, k: PathKey): OriginNode =>
  n.kids?.get(String(k)) ?? leaf(n.origin.src, [...n.origin.path, k]);

export class Merger {
  value: Record<string, unknown>;
  readonly root: OriginNode;
  readonly issues: MergeIssue[] = [];

  constructor(base: Record<string, unknown>) {
    this.value = base;
    this.root = leaf(0, []);
  }

  /** Merge `over` (the partial config at `at` in source `src`) onto the current value. */
  apply(over: Record<string, unknown>, src: number, at: PathKey[]): void {
    const r = this.mergeMap(this.value, this.root, over, src, at, true);
    this.value = r.value;
    this.root.kids = r.node.kids;
  }

  private mergeMap(
    base: Record<string, unknown>,
    bn: OriginNode,
    over: Record<string, unknown>,
    src: number,
    at: PathKey[],
    top: boolean,
  ): { value: Record<string, unknown>; node: OriginNode } {
    const out: Record<string, unknown> = { ...base };
    const kids = new Map<string, OriginNode>();
    for (const k of Object.keys(base)) kids.set(k, kidOf(bn, k));
    for (const [k, v] of Object.entries(over)) {
      if (top && k === '$schema') continue;
      if (v === null) {
        delete out[k];
        kids.delete(k);
        continue;
      }
      const here = [...at, k];
      if (!Object.hasOwn(out, k)) {
        // rules new to the config still lose their directives (a `remove` of nothing is an error)
        const r =
          top && k === 'rules' && Array.isArray(v)
            ? this.mergeRules([], leaf(src, here), v, src, here)
            : { value: v, node: leaf(src, here) };
        out[k] = r.value;
        kids.set(k, r.node);
        continue;
      }
      const bv = out[k];
      if (top && k === 'rules' && Array.isArray(bv) && Array.isArray(v)) {
        const r = this.mergeRules(bv, kids.get(k)!, v, src, here);
        out[k] = r.value;
        kids.set(k, r.node);
      } else if (isMap(bv) && isMap(v) && !atomic(k, bv, v)) {
        const r = this.mergeMap(bv, kids.get(k)!, v, src, here, false);
        out[k] = r.value;
        kids.set(k, r.node);
      } else {
        out[k] = v;
        kids.set(k, leaf(src, here));
      }
    }
    return { value: out, node: { origin: bn.origin, kids } };
  }

  private mergeRules(
    base: unknown[],
    bn: OriginNode,
    over: unknown[],
    src: number,
    at: PathKey[],
  ): { value: unknown[]; node: OriginNode } {
    const items = base.map((value, i) => ({ value, node: kidOf(bn, i) }));
    const nameOf = (v: unknown) => (isMap(v) && typeof v.name === 'string' ? v.name : undefined);
    const indexOf = (name: string) => items.findIndex((it) => nameOf(it.value) === name);
    over.forEach((rule, j) => {
      const here = [...at, j];
      if (!isMap(rule)) {
        items.push({ value: rule, node: leaf(src, here) });
        return;
      }
      const name = nameOf(rule);
      const { remove, before, ...clean } = rule as Record<string, unknown> & {
        remove?: unknown;
        before?: unknown;
      };
      if (remove !== undefined) {
        if (remove !== true)
          return this.issues.push({
            src,
            path: [...here, 'remove'],
            message: '`remove` takes only `true`',
          });
        if (name === undefined)
          return this.issues.push({
            src,
            path: here,
            message: '`remove: true` needs the `name` of the rule to remove',
          });
        if (Object.keys(clean).length > 1 || before !== undefined)
          return this.issues.push({
            src,
            path: here,
            message: 'a rule with `remove: true` has only its `name`',
          });
        const i = indexOf(name);
        if (i < 0)
          return this.issues.push({
            src,
            path: [...here, 'name'],
            message: `no rule named "${name}" to remove (rules merged so far: ${items.map((it) => nameOf(it.value) ?? '(unnamed)').join(', ') || 'none'})`,
          });
        items.splice(i, 1);
        return;
      }
      const item = { value: clean, node: leaf(src, here) };
      const existing = name === undefined ? -1 : indexOf(name);
      if (before !== undefined) {
        if (typeof before !== 'string')
          return this.issues.push({
            src,
            path: [...here, 'before'],
            message: '`before` names a rule',
          });
        if (existing >= 0) items.splice(existing, 1);
        const t = indexOf(before);
        if (t < 0)
          return this.issues.push({
            src,
            path: [...here, 'before'],
            message: `no rule named "${before}" to insert before`,
          });
        items.splice(t, 0, item);
      } else if (existing >= 0) items[existing] = item;
      else items.push(item);
    });
    const kids = new Map<string, OriginNode>(items.map((it, i) => [String(i), it.node]));
    return { value: items.map((it) => it.value), node: { origin: bn.origin, kids } };
  }
}

export interface Source {
  file: string;
  positions: SourcePositions | undefined;
}

export interface Located extends Partial<Pos> {
  file: string;
}

/**
 * Positions in the effective config: each path is traced to the source (base file, overlay
 * file, or an inline overlay in the base) that set it, then located there.
 */
export class MergedPositions {
  constructor(
    readonly sources: readonly Source[],
    private readonly root: OriginNode = leaf(0, []),
  ) {}

  static single(file: string, positions: SourcePositions | undefined): MergedPositions {
    return new MergedPositions([{ file, positions }]);
  }

  private trace(path: readonly PathKey[]): { src: Source; path: PathKey[] } {
    let node = this.root;
    let i = 0;
    while (i < path.length) {
      const next = node.kids?.get(String(path[i]));
      if (!next) break;
      node = next;
      i++;
    }
    return { src: this.sources[node.origin.src]!, path: [...node.origin.path, ...path.slice(i)] };
  }

  locate(path: readonly PathKey[], opts: { key?: boolean | undefined } = {}): Located {
    const t = this.trace(path);
    return { file: t.src.file, ...(t.src.positions?.locate(t.path, opts) ?? {}) };
  }

  /** the file that set the value at `path` (relative secret files resolve against its directory) */
  fileOf(path: readonly PathKey[]): string {
    return this.trace(path).src.file;
  }
}
