#!/usr/bin/env bash
# The package as users get it: `npm pack` (prepack builds dist/ afresh), install the tarball
# into a temporary global prefix, and use the installed copy from outside the repository:
# `awg --version` is package.json's version, every shipped example validates, every dist module
# loads with the production dependencies only, the gRPC proto is read from the installed
# package, the tarball holds no test doubles, source maps or sources, and the published schema
# types resolve for a TypeScript consumer (nodenext, bundler and node10 resolution).
# Needs the npm registry (or npm's cache) for the dependencies, nothing else; cleans up. The
# install is bounded (fetch timeout, one retry, 10 min in all): a stalled registry fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-pack-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "pack-smoke: $*" >&2
  exit 1
}
run() { # run a step quietly; show its output when it fails
  "$@" >"$tmp/step.log" 2>&1 || { cat "$tmp/step.log" >&2; fail "failed: $*"; }
}

version=$(node -p "require('./package.json').version")
run npm pack --pack-destination "$tmp" --loglevel=error
tgz="$tmp/awg-$version.tgz"
[ -f "$tgz" ] || fail "npm pack did not write $tgz"

tar tzf "$tgz" | sed 's#^package/##' | sort >"$tmp/contents"
for f in bin/awg.js dist/cli/main.js proto/awg.proto schema/config.schema.json \
  schema/plan.schema.json schema/status.schema.json schema/config.schema.d.ts schema/plan.schema.d.ts examples/minimal.yaml \
  share/completions/awg.bash share/completions/_awg share/completions/awg.fish share/man/awg.1 docs/troubleshooting.md; do
  grep -qxF "$f" "$tmp/contents" || fail "the tarball lacks $f"
done
unwanted=$(grep -E '(^|/)fake(-[^/]*)?\.(js|ts)$|^dist/dataplane/(tun|conn)/memory\.js$|\.map$|^(src|test|bench|scripts)/' "$tmp/contents" || true)
[ -z "$unwanted" ] || fail "the tarball must not contain: $unwanted"

run timeout 600 npm install --global --prefix "$tmp/prefix" --no-audit --no-fund --prefer-offline --fetch-timeout=60000 --fetch-retries=1 --loglevel=error "$tgz"
awg="$tmp/prefix/bin/awg"
pkg="$tmp/prefix/lib/node_modules/awg"
cd "$tmp"

got=$("$awg" --version) || fail "awg --version failed"
[ "$got" = "$version" ] || fail "awg --version printed '$got', package.json says $version"

for example in "$pkg"/examples/*.yaml; do
  run "$awg" validate -f "$example"
done

# every module of the installed dist imports with the installed (production) dependencies
cat >"$tmp/load.mjs" <<'EOF'
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const pkg = process.argv[2];
const dist = join(pkg, 'dist');
const failed = [];
for (const f of readdirSync(dist, { recursive: true }).filter((f) => f.endsWith('.js'))) {
  await import(pathToFileURL(join(dist, f)).href).catch((e) => failed.push(`${f}: ${e}`));
}
if (failed.length > 0) throw new Error(`modules that do not load:\n${failed.join('\n')}`);
const { PROTO_PATH } = await import(pathToFileURL(join(dist, 'daemon/convert.js')).href);
if (!PROTO_PATH.startsWith(pkg + '/')) throw new Error(`proto read from ${PROTO_PATH}, not the package`);
const { awgService } = await import(pathToFileURL(join(dist, 'daemon/grpc-service.js')).href);
if (Object.keys(awgService()).length === 0) throw new Error('the Awg service has no methods');
process.exit(0);
EOF
run node "$tmp/load.mjs" "$(cd "$pkg" && pwd -P)"

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

echo "pack-smoke: awg $version packs, installs and runs from $(basename "$tgz")"
