/**
 * The kill switch's boot copy (`<state>/killswitch-boot.nft`): the file the early unit
 * (`awg-killswitch.service`) loads with `nft -f` before any network is configured, written
 * and read by the Linux firewall driver (linux.ts) with the table it follows.
 */
import { normaliseRuleset } from './normalise.js';
import { tagTable, untagTable } from './parse.js';
import { renderTransaction } from './render.js';
import { ownerTagOf } from '../owner-lock.js';
import { BOOT_RULESET_FILE } from '../service/render.js';
import { stateFile, type StateStore } from '../../util/state.js';

export { BOOT_RULESET_FILE };

const BOOT_HEADER =
  '# managed-by=awg: the kill switch loaded at boot by awg-killswitch.service (nft -f); written by awg apply, removed by awg down\n';

/**
 * What the early unit loads: one transaction, so a table already there is replaced whole;
 * `owner`: the tag its marker carries (the table it makes is its owner's).
 */
export function renderBootFile(table: string, boot: string, owner?: string): string {
  return BOOT_HEADER + tagTable(renderTransaction({ family: 'inet', table, ruleset: boot }), owner);
}

/** The boot table a file holds, normalised; `unreadable` when it is not one we wrote for `table`. */
export function parseBootFile(text: string, table: string): string {
  const head = BOOT_HEADER + `add table inet ${table}\ndelete table inet ${table}\n`;
  return text.startsWith(head)
    ? untagTable(normaliseRuleset(text.slice(head.length))).ruleset
    : 'unreadable (not written by awg for this table)\n';
}

/** The state directory's boot copy: the rendered file, or the table itself in an in-memory store (tests). */
export const bootCopy = {
  read(state: StateStore, table: string): string | undefined {
    let text: string | undefined;
    try {
      text = stateFile.read(state, BOOT_RULESET_FILE);
    } catch (e) {
      return `unreadable (${(e as Error).message})\n`;
    }
    return text === undefined || state.dir === ':memory:' ? text : parseBootFile(text, table);
  },
  write(state: StateStore, table: string, boot: string): void {
    stateFile.write(
      state,
      BOOT_RULESET_FILE,
      state.dir === ':memory:' ? boot : renderBootFile(table, boot, ownerTagOf(state)),
    );
  },
  remove(state: StateStore): void {
    stateFile.remove(state, BOOT_RULESET_FILE);
  },
};
