#!/usr/bin/env node
import { installCrashHandlers, main } from '../dist/cli/main.js';

// an uncaught exception or unhandled rejection is logged and ends the process with 70 (cli/crash.ts)
installCrashHandlers();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`awg: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
