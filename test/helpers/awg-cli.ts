/**
 * Entry point for end-to-end tests: runs the awg CLI from the current sources (through tsx),
 * so a test never exercises a stale `dist/`. Same code path as bin/awg.js.
 */
import { installCrashHandlers, main } from '../../src/cli/main.js';

installCrashHandlers();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`awg: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
