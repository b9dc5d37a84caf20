#!/usr/bin/env bash
# The package as users get it: `npm pack` (prepack builds dist/ afresh, in a copy of the checkout), install the tarball
# into a temporary global prefix, and use the installed copy from outside the repository:
# `awg --version` is package.json's version and the CLI runs from the bundle (dist/bundle/, the
# only code shipped), every shipped example validates, every bundle file loads with the
# production dependencies only, `validate` and `diff` load no daemon, gRPC or engine code (a
# loader hook lists what they import; esbuild's metafile says which sources each file holds), the
# gRPC proto is read from the installed package, the tarball holds no test doubles, source maps or
# sources, and the published schema types resolve for a TypeScript consumer (nodenext, bundler
# and node10 resolution); uninstalling as the README says leaves the host's files as before the
# install (a snapshot diff). Needs root for `diff` in a scratch network namespace.
# Needs the npm registry (or npm's cache) for the dependencies, nothing else; cleans up. The
# install is bounded (fetch timeout, one retry, 10 min in all): a stalled registry fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-pack-smoke.XXXXXX")
ns=""
cleanup() {
  [ -z "$ns" ] || ip netns del "$ns" 2>/dev/null || true
  # a compile cache other runs left (bench, earlier tests) was moved aside for the snapshot
  if [ -e "$tmp/cache-aside" ]; then rm -rf /var/cache/awg; mv "$tmp/cache-aside" /var/cache/awg; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "pack-smoke: $*" >&2
  exit 1
}
run() { # run a step quietly; show its output when it fails
  "$@" >"$tmp/step.log" 2>&1 || { cat "$tmp/step.log" >&2; fail "failed: $*"; }
}

version=$(node -p "require('./package.json').version")
# npm pack in a copy of the checkout (its files as git lists them, the dependencies linked): the
# prepack's build rewrites the copy's dist/, not the checkout's, which tests and benchmarks that
# run beside this smoke (scripts/test.sh) are starting programs from
src="$tmp/checkout"
mkdir "$src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard |
    tar -C "$repo" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$src" -xf -
else
  tar -C "$repo" --exclude=./node_modules --exclude=./dist --exclude=./.test-results --exclude=./bench/out -cf - . | tar -C "$src" -xf -
fi
ln -s "$repo/node_modules" "$src/node_modules"
(cd "$src" && run npm pack --pack-destination "$tmp" --loglevel=error)
tgz="$tmp/awg-$version.tgz"
[ -f "$tgz" ] || fail "npm pack did not write $tgz"

tar tzf "$tgz" | sed 's#^package/##' | sort >"$tmp/contents"
for f in bin/awg.js bin/compile-cache.js dist/bundle/main.js dist/bundle/udpsend-worker.js dist/bundle/pool-worker.js dist/bundle/crypto-pool.js dist/bundle/grpc-service.js proto/awg.proto schema/config.schema.json \
  schema/plan.schema.json schema/status.schema.json schema/top.schema.json schema/config.schema.d.ts schema/plan.schema.d.ts examples/minimal.yaml \
  share/completions/awg.bash share/completions/_awg share/completions/awg.fish share/man/awg.1 docs/troubleshooting.md; do
  grep -qxF "$f" "$tmp/contents" || fail "the tarball lacks $f"
done
unwanted=$({ grep -E '\.fake\.(js|ts)$|\.map$|^(src|test|bench|scripts)/' "$tmp/contents"; grep '^dist/' "$tmp/contents" | grep -v '^dist/bundle/'; } || true)
[ -z "$unwanted" ] || fail "the tarball must not contain: $unwanted"
meta="$src/dist/bundle.meta.json" # written by prepack's bundle, beside the bundle
[ -f "$meta" ] || fail "no $meta (prepack runs scripts/bundle.mjs)"
doubles=$(node -e 'const m = require(process.argv[1]); for (const o of Object.values(m.outputs)) for (const i of Object.keys(o.inputs)) if (/\.fake\.js$/.test(i)) console.log(i)' "$meta" | sort -u)
[ -z "$doubles" ] || fail "the bundle must not contain test doubles: $doubles"

# what the README's npm install and uninstall may touch, before and after: the global prefix (laid
# out as npm's own is: bin/ and lib/node_modules/ exist), the system's files, awg's state, config
# and compile-cache directories, the user's cache
mkdir -p "$tmp/prefix/bin" "$tmp/prefix/lib/node_modules"
# the uninstall removes /var/cache/awg: one that earlier runs of the CLI made goes aside meanwhile
if [ -e /var/cache/awg ]; then mv /var/cache/awg "$tmp/cache-aside"; fi
snapshot() {
  { find "$tmp/prefix" /usr /etc /opt /var/lib /var/cache /run/awg "$HOME/.cache/awg" -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt \
    -o -path /var/cache/apt -o -path /var/cache/debconf -o -path /var/cache/man -o -path /var/lib/systemd -o -path /etc/ld.so.cache \) -prune -o -print 2>/dev/null || true; } | sort
}
snapshot >"$tmp/before"
run timeout 600 npm install --global --prefix "$tmp/prefix" --no-audit --no-fund --prefer-offline --fetch-timeout=60000 --fetch-retries=1 --loglevel=error "$tgz"
awg="$tmp/prefix/bin/awg"
pkg="$tmp/prefix/lib/node_modules/awg"
cd "$tmp"

got=$("$awg" --version) || fail "awg --version failed"
[ "$got" = "$version" ] || fail "awg --version printed '$got', package.json says $version"

for example in "$pkg"/examples/*.yaml; do
  run "$awg" validate -f "$example"
done

# the crypto pool's thread starts from the bundle's layout (pool.ts starts pool-worker.js by URL,
# next to itself): a broken path would only show as an engine that never uses a second core
cat >"$tmp/pool-check.mjs" <<'JS'
const { CryptoPool } = await import(`${process.argv[2]}/crypto-pool.js`);
const pool = CryptoPool.create({ threads: 1, eager: true, callerRuns: false });
for (let i = 0; i < 500 && pool.running < 1; i++) await new Promise((r) => setTimeout(r, 10));
if (pool.running < 1) throw new Error('the pool thread did not start');
const q = pool.queue();
const dst = Buffer.allocUnsafeSlow(65536);
for (let i = 0; i < 16; i++) q.seal(Buffer.alloc(32, 1), i, Buffer.alloc(1000, i), 0, dst, i * 1100);
q.run();
for (let i = 0; i < 16; i++) if (q.result(i) !== 1016) throw new Error(`job ${i}: ${q.result(i)}`);
if (pool.stats.threadJobs !== 16) throw new Error(`the thread ran ${pool.stats.threadJobs} of 16 jobs`);
await pool.stop();
JS
run node "$tmp/pool-check.mjs" "$pkg/dist/bundle"

# on Node 22.1+ the installed CLI keeps V8's compile cache; as root in /var/cache/awg (the
# uninstall below must remove it)
node24=$(cd "$repo" && bash scripts/runtimes.sh 24 | tail -1)
run "$node24" "$pkg/bin/awg.js" validate -f "$pkg/examples/minimal.yaml"
[ -n "$(ls -A /var/cache/awg/compile 2>/dev/null)" ] || fail "Node 24 kept no compile cache in /var/cache/awg/compile"

# every file of the installed bundle imports with the installed (production) dependencies
cat >"$tmp/load.mjs" <<'EOF'
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const pkg = process.argv[2];
const dist = join(pkg, 'dist', 'bundle');
const failed = [];
for (const f of readdirSync(dist, { recursive: true }).filter((f) => f.endsWith('.js'))) {
  await import(pathToFileURL(join(dist, f)).href).catch((e) => failed.push(`${f}: ${e}`));
}
if (failed.length > 0) throw new Error(`modules that do not load:\n${failed.join('\n')}`);
const { awgService, PROTO_PATH } = await import(pathToFileURL(join(dist, 'grpc-service.js')).href);
if (!PROTO_PATH.startsWith(pkg + '/')) throw new Error(`proto read from ${PROTO_PATH}, not the package`);
if (Object.keys(awgService()).length === 0) throw new Error('the Awg service has no methods');
process.exit(0);
EOF
run node "$tmp/load.mjs" "$(cd "$pkg" && pwd -P)"

# what `validate` and `diff` import (ESM resolution, seen by a loader hook), mapped to sources
cat >"$tmp/hooks.mjs" <<'EOF'
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.AWG_SMOKE_LOADS, `${r.url}\n`);
  return r;
}
EOF
cat >"$tmp/register.mjs" <<'EOF'
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
EOF
cat >"$tmp/loaded.mjs" <<'EOF'
// loaded.mjs <metafile> <loads> <what> <forbidden source regex> <forbidden package regex>
import { readFileSync } from 'node:fs';
const [metaFile, loadsFile, what, badSource, badPackage] = process.argv.slice(2);
const meta = JSON.parse(readFileSync(metaFile, 'utf8'));
const urls = readFileSync(loadsFile, 'utf8').split('\n').filter(Boolean);
const chunks = new Set(urls.filter((u) => u.includes('/dist/bundle/')).map((u) => u.replace(/.*\/dist\/bundle\//, '')));
if (!chunks.has('main.js')) throw new Error(`${what}: did not run from the bundle:\n${urls.join('\n')}`);
const sources = Object.entries(meta.outputs)
  .filter(([out]) => chunks.has(out.replace(/.*\/bundle\//, '')))
  .flatMap(([, o]) => Object.keys(o.inputs));
const bad = [
  ...sources.filter((s) => new RegExp(badSource).test(s)),
  ...urls.filter((u) => u.includes('/node_modules/') && new RegExp(badPackage).test(u.replace(/.*\/node_modules\//, ''))),
];
if (bad.length > 0) throw new Error(`${what} loads what it must not:\n${[...new Set(bad)].join('\n')}`);
EOF
engine='^dist/dataplane/(engine|index|device/(device|peer|send|receive)|noise/|crypto/|conn/|tun/)|^dist/daemon/(core|daemon|grpc-service|loop|server|metrics|wakes|traffic)\.js$'
: >"$tmp/loads.validate"
AWG_SMOKE_LOADS="$tmp/loads.validate" run node --import "$tmp/register.mjs" "$pkg/bin/awg.js" validate -f "$pkg/examples/minimal.yaml"
run node "$tmp/loaded.mjs" "$meta" "$tmp/loads.validate" validate "$engine|^dist/(daemon|native|procs|reconciler)/" '^(@grpc/|koffi/|pino/|prom-client/|chokidar/)'
ns="awg-pack-smoke-$$"
ip netns add "$ns"
mkdir -m 700 "$tmp/state"
: >"$tmp/loads.diff"
code=0
AWG_SMOKE_LOADS="$tmp/loads.diff" nsenter --net="/var/run/netns/$ns" node --import "$tmp/register.mjs" "$pkg/bin/awg.js" diff -f "$pkg/examples/minimal.yaml" --state-dir "$tmp/state" >"$tmp/step.log" 2>&1 || code=$?
[ "$code" = 2 ] || { cat "$tmp/step.log" >&2; fail "awg diff in an empty namespace exited $code, expected 2 (changes)"; }
run node "$tmp/loaded.mjs" "$meta" "$tmp/loads.diff" diff "$engine" '^(@grpc/|pino/|prom-client/|chokidar/)'

# a consumer's TypeScript project reaches the published types by the package name
mkdir -p "$tmp/consumer/node_modules"
ln -s "$pkg" "$tmp/consumer/node_modules/awg"
cp "$repo/test/fixtures/schema-consumer.ts" "$tmp/consumer/consumer.ts"
for mode in nodenext:nodenext esnext:bundler commonjs:node10; do
  cat >"$tmp/consumer/tsconfig.json" <<EOF
{ "compilerOptions": { "module": "${mode%%:*}", "moduleResolution": "${mode##*:}", "strict": true,
  "noEmit": true, "types": [], "lib": ["es2022"], "skipLibCheck": false }, "files": ["consumer.ts"] }
EOF
  run "$repo/node_modules/.bin/tsc" -p "$tmp/consumer/tsconfig.json"
done

# uninstall as the README says: `awg service uninstall` (no unit was installed: a dry run, which
# must not touch the host's systemd), `awg down` (nothing is applied on the host: the state used
# above is the scratch one), `npm rm -g awg`, the state directory (here the scratch one), the
# compile cache; the host is as before the install
cd "$repo"
run "$awg" service uninstall --dry-run
run "$awg" down --state-dir "$tmp/state" --dry-run
run npm rm --global --prefix "$tmp/prefix" --loglevel=error awg
rm -rf "$tmp/state" /var/cache/awg "$HOME/.cache/awg"
snapshot >"$tmp/after"
if ! diff -u "$tmp/before" "$tmp/after" >"$tmp/uninstall.diff"; then cat "$tmp/uninstall.diff" >&2; fail "the host differs after npm uninstall"; fi

echo "pack-smoke: awg $version packs, installs and runs from $(basename "$tgz")"
