/**
 * The host-selection flags (`--host`, `--labels`, `--labels-file`, `--os`) of the commands
 * that load a config: which overlays apply (config/overlay.ts). Without any, a config with
 * overlays is rendered for this machine.
 */
import { Option, type Command } from 'commander';
import type { HostSelection } from '../config/overlay.js';
import { toAwgError } from '../errors.js';
import { printError, type Io } from './output.js';

export interface SelectionOptions {
  host?: string;
  labels?: string;
  labelsFile?: string;
  os?: string;
}

/** add the flags; `os`: also `--os` (commands that never act on this host: render, validate, diff) */
export function selectionFlags(c: Command, o: { os?: boolean } = {}): Command {
  c.option(
    '--host <name>',
    "select overlays for this host name instead of this machine's (docs/fleet.md)",
  )
    .option('--labels <k=v,...>', 'host labels for overlay selectors (default: --labels-file)')
    .option(
      '--labels-file <file>',
      'YAML mapping of host labels (default /etc/awg/labels.yaml when it exists)',
    );
  if (o.os)
    c.addOption(
      new Option('--os <os>', "select overlays for this OS (default this machine's)").choices([
        'linux',
        'darwin',
      ]),
    );
  return c;
}

export function selectionGiven(o: SelectionOptions): boolean {
  return (
    o.host !== undefined ||
    o.labels !== undefined ||
    o.labelsFile !== undefined ||
    o.os !== undefined
  );
}

/** the selection the flags name, or undefined (this machine, resolved only if the config has overlays); throws AwgError on bad flags */
export async function selectionOf(o: SelectionOptions): Promise<HostSelection | undefined> {
  if (!selectionGiven(o)) return undefined;
  const { selectionFrom } = await import('../config/host-selection.js');
  return selectionFrom(o);
}

/**
 * For long-running commands (daemon, up): the selection is fixed at start — the flags', else
 * this machine's name and labels as they are now. A broken labels file without flags is
 * left to the config load (an error only when the config has overlays).
 */
export async function selectionAtStart(o: SelectionOptions): Promise<HostSelection | undefined> {
  const { selectionFrom } = await import('../config/host-selection.js');
  if (selectionGiven(o)) return selectionFrom(o);
  try {
    return selectionFrom({});
  } catch {
    return undefined;
  }
}

/**
 * The selection as an options fragment to spread (`{}` for this machine, resolved only when
 * the config has overlays), or the exit code 1 after printing why the flags are wrong.
 * `which`: selectionOf (per load) or selectionAtStart (daemon, up).
 */
export async function selectionOrExit(
  io: Io,
  o: SelectionOptions,
  which: (o: SelectionOptions) => Promise<HostSelection | undefined> = selectionOf,
): Promise<{ selection?: HostSelection } | number> {
  try {
    const selection = await which(o);
    return selection ? { selection } : {};
  } catch (e) {
    printError(io, toAwgError(e, 'invalid-config'));
    return 1;
  }
}
