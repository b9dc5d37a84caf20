/**
 * `awg render -f base.yaml [--host H] [--labels k=v,...] [--os linux|darwin]`: the effective
 * config of a host — the base with the overlays its selectors pick merged in (docs/fleet.md)
 * — validated and printed as YAML (or JSON). Reads no secret; inline secret values are
 * printed as "(sensitive)". Runs anywhere: no root, no host state.
 */
import { stringify } from 'yaml';
import { toAwgError } from '../../errors.js';
import { printError, printIssues, type Io } from '../output.js';
import { selectionOf, type SelectionOptions } from '../selection.js';

export interface RenderOptions extends SelectionOptions {
  file: string;
  json?: boolean;
}

/** exit 0 rendered (valid), 1 invalid */
export async function renderCommand(io: Io, o: RenderOptions): Promise<number> {
  try {
    const [
      { loadConfigFile, hasErrors },
      { localSelection, describeSelection },
      { secretRefs, REDACTED },
    ] = await Promise.all([
      import('../../config/load.js'),
      import('../../config/host-selection.js'),
      import('../../config/secrets.js'),
    ]);
    const selection = (await selectionOf(o)) ?? localSelection();
    const l = await loadConfigFile(o.file, { selection });
    if (!l.config || !l.raw || hasErrors(l.issues)) {
      printIssues(io, l.issues);
      io.err(`${o.file}: invalid for ${describeSelection(selection)}\n`);
      return 1;
    }
    printIssues(io, l.issues);
    const raw = structuredClone(l.raw);
    let redacted = 0;
    for (const ref of secretRefs(l.config)) {
      if (typeof ref.secret !== 'string') continue;
      let cur: unknown = raw;
      for (const k of ref.path.slice(0, -1)) cur = (cur as Record<string | number, unknown>)[k];
      (cur as Record<string | number, unknown>)[ref.path.at(-1)!] = REDACTED;
      redacted++;
    }
    const overlays: { name: string; file?: string; inline?: true }[] = l.overlays.map((a) => ({
      name: a.name,
      ...(a.file ? { file: a.file } : { inline: true as const }),
    }));
    if (o.json) {
      io.out(
        JSON.stringify(
          {
            host: selection.host,
            os: selection.os,
            labels: selection.labels,
            overlays,
            redactedSecrets: redacted,
            config: raw,
          },
          null,
          2,
        ) + '\n',
      );
      return 0;
    }
    const head = [
      `# awg render ${o.file}: ${describeSelection(selection)}`,
      `# overlays applied: ${overlays.length ? overlays.map((a) => (a.file ? `${a.name} (${a.file})` : `${a.name} (inline)`)).join(', ') : 'none'}`,
      ...(redacted ? [`# ${redacted} inline secret value(s) shown as "${REDACTED}"`] : []),
    ];
    io.out(head.join('\n') + '\n' + stringify(raw, { lineWidth: 0 }));
    return 0;
  } catch (e) {
    const err = toAwgError(e, 'invalid-config');
    printError(io, err);
    return err.exitCode;
  }
}
