/**
 * The YAML text of an import: the config document with the schema header, the INI comments
 * (scrubbed of secrets) and awg's own notes attached to the nodes they belong to. Pure.
 */
import { Document, isMap, isScalar, isSeq } from 'yaml';
import type { Node as YamlNode, Pair, Scalar } from 'yaml';
import type { Note, Path } from './locations.js';
import { scrubSecrets } from './scrub.js';

/**
 * The YAML for `config`: `notes` are the INI comments and import notes by config path,
 * `tail` the comments after the last INI entry, `defaultNote` the routing note above `default`.
 */
export function render(
  config: Record<string, unknown>,
  notes: Note[],
  schemaUrl: string,
  tail: string[],
  defaultNote: string[],
  file: string,
  origin?: string,
): string {
  const doc = new Document(config);
  doc.commentBefore = ` yaml-language-server: $schema=${schemaUrl}\n ${origin ?? `Imported from ${file.split(/[\\/]/).pop() ?? file} by \`awg import\`.`}`;
  // comments come from the INI file: no key material from them (scrubSecrets)
  for (const n of notes)
    annotate(
      doc,
      n.path,
      n.before.map(scrubSecrets),
      n.trailing === undefined ? undefined : scrubSecrets(n.trailing),
    );
  annotate(doc, ['default'], defaultNote);
  annotate(
    doc,
    ['dns'],
    [' wg-quick pointed the system resolver at the tunnel DNS; so does this.'],
  );
  if (tail.length > 0) doc.comment = tail.map(scrubSecrets).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** Attach comments to the node at `path`: map entries get them on the key, items on the item. */
function annotate(doc: Document, path: Path, before: string[], trailing?: string): void {
  const last = path[path.length - 1];
  const parent = doc.getIn(path.slice(0, -1), true) as YamlNode | undefined;
  let target: YamlNode | undefined;
  let value: YamlNode | undefined;
  if (isMap(parent)) {
    const pair = parent.items.find(
      (p: Pair) => isScalar(p.key) && (p.key as Scalar).value === last,
    );
    target = pair?.key as YamlNode | undefined;
    value = pair?.value as YamlNode | undefined;
    // a comment on the first key of a sequence item would print after "- "
    if (pair !== undefined && pair === parent.items[0] && isSeq(doc.getIn(path.slice(0, -2), true)))
      target = parent;
  } else if (isSeq(parent) && typeof last === 'number') {
    target = parent.items[last] as YamlNode | undefined;
    value = target;
  }
  if (!target) return;
  const add = before.map((c) => c.trimEnd()).join('\n');
  if (add !== '')
    target.commentBefore = target.commentBefore ? `${target.commentBefore}\n${add}` : add;
  if (trailing !== undefined) {
    if (isScalar(value)) value.comment = trailing.trimEnd();
    else
      target.commentBefore = target.commentBefore
        ? `${target.commentBefore}\n${trailing}`
        : trailing;
  }
}
