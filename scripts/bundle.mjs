#!/usr/bin/env node
// The bundled CLI an installed package runs: tsc's dist/ (build it first: `npm run build`)
// bundled by esbuild into dist/bundle/ (or the directory given), code-split so that each
// command loads only what it uses (`validate` and `diff` load no gRPC, engine or daemon code:
// scripts/pack-smoke.sh checks). Entry points:
//   main.js            the CLI (bin/awg.js imports it where dist/cli/ is absent, as in a package)
//   udpsend-worker.js  the data plane's sender thread (udpsend-senders.ts starts it by URL, next to itself)
//   pool-worker.js     a crypto pool thread (dataplane/crypto/pool.ts starts it by URL, next to itself)
//   crypto-pool.js     the pool itself (pack-smoke starts a thread of the installed bundle through it)
//   grpc-service.js    the daemon API's service definition (pack-smoke checks the proto it reads)
// The small pure-JS dependencies on the CLI's hot path are bundled in (the per-module cost of
// Node's loader is most of the unbundled start-up); the rest stay external and load from
// node_modules: koffi (native), gRPC and protobufjs (dynamic requires, loaded by the daemon and
// its clients only), pino (worker-based transports), chokidar, prom-client, socks, age.
// Usage: node scripts/bundle.mjs [outdir]   (also writes <outdir>.meta.json, esbuild's metafile)
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = process.argv[2] ?? join(root, 'dist', 'bundle');
// (ipaddr.js is loaded through createRequire, src/util/ipaddr.ts: always from node_modules)
const BUNDLED = new Set(['zod', 'yaml', 'commander', 'xstate', 'picomatch']);
// yaml's ES module build (what its package.json gives everything but Node): esbuild drops what awg
// does not use, ≈ 60 KiB less for the commands that read a config to load than the CommonJS build.
// The same source; only yaml's own warnings (`parse()`, collection keys in toJS) go to console.warn
// instead of process.emitWarning, and !!binary decodes through atob instead of Buffer.
const YAML_ESM = join(root, 'node_modules', 'yaml', 'browser', 'index.js');

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'dist/cli/main.js',
    'udpsend-worker': 'dist/native/udpsend-worker.js',
    'pool-worker': 'dist/dataplane/crypto/pool-worker.js',
    'crypto-pool': 'dist/dataplane/crypto/pool.js',
    'grpc-service': 'dist/daemon/grpc-service.js',
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  // CommonJS dependencies bundled into ESM call require() for Node's built-ins
  banner: {
    js: "import { createRequire as __awgRequire } from 'node:module'; const require = __awgRequire(import.meta.url);",
  },
  chunkNames: 'chunk-[hash]',
  // whitespace and syntax only (names stay, for stack traces): V8 keeps every module's source
  // in the heap for lazy compilation, 2 MiB of it for the daemon before (bench/RESULTS.md Step 14)
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: true,
  logLevel: 'warning',
  plugins: [
    {
      name: 'external-packages',
      setup(b) {
        // a bare specifier that is not one of BUNDLED (or @noble/*) stays an import at run time
        b.onResolve({ filter: /^[^./]/ }, (args) => {
          if (args.path.startsWith('node:')) return { external: true };
          if (args.path === 'yaml') return { path: YAML_ESM };
          const name = args.path.startsWith('@')
            ? args.path.split('/').slice(0, 2).join('/')
            : args.path.split('/')[0];
          if (BUNDLED.has(name) || name.startsWith('@noble/')) return undefined;
          return { external: true };
        });
      },
    },
  ],
});
// which sources each output holds, for scripts/pack-smoke.sh (next to the bundle, not in it)
writeFileSync(`${outdir}.meta.json`, JSON.stringify(result.metafile));
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
console.log(
  `bundle: ${outputs.length} files, ${(bytes / 1024).toFixed(0)} KiB in ${relative(process.cwd(), outdir) || '.'}`,
);
