/**
 * Builds the booted hosts' root ahead of the host tests (scripts/test.sh starts it beside the
 * netns tests): `npx tsx test/host/make-root.ts` prints the cached root's path.
 */
import { ensureRoot } from './root.js';

console.log(await ensureRoot());
