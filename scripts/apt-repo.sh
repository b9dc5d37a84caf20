#!/usr/bin/env bash
# Builds (or adds to) a signed apt repository of awg's Debian packages:
#
#   bash scripts/apt-repo.sh --repo DIR (--gnupghome DIR | --secret-key FILE) --key FPR \
#        --suite stable awg_0.1.0_amd64.deb --suite beta awg_0.1.0_amd64.deb awg_0.1.1_amd64.deb
#   bash scripts/apt-repo.sh --repo DIR --test-key DIR --suite …     (tests: see below)
#
# Layout written (Debian's, what apt's `Suites:`/`Components: main` expect):
#   pool/main/a/awg/<name>_<version>_<arch>.deb           every package ever added
#   dists/<suite>/main/binary-<arch>/Packages, Packages.gz the suite's packages of that arch (+ `all`)
#   dists/<suite>/Release                                   Origin … Date [Valid-Until], SHA256 of each index
#   dists/<suite>/InRelease, Release.gpg                    Release clearsigned; detached (older clients)
#   awg-archive-keyring.gpg                                 the public key, binary: /usr/share/keyrings/
#
# Incremental: a suite's members are those its Packages already lists plus the .debs given for it
# now, so re-running with a new .deb keeps the older versions (apt installs the newest; the
# older ones stay installable with `apt install awg=<version>`). Every suite already in dists/ is
# re-indexed and re-signed on each run (its Date moves; Valid-Until, if set, restarts). A .deb
# whose pool file exists with other contents is refused: a published version never changes.
#
# The signing key is GIVEN, never made: a GNUPGHOME holding it (--gnupghome) or an exported
# secret key (--secret-key, imported into a temporary GNUPGHOME removed on exit), and its
# fingerprint (--key). `--test-key DIR` alone makes one: it creates an unprotected ed25519 key in
# DIR (a new GNUPGHOME) unless DIR already holds a secret key, and uses that — for tests only.
# Signatures use SHA512 (apt rejects SHA1). Tools: dpkg-scanpackages (dpkg-dev), gpg, gzip.
set -euo pipefail
umask 022
die() { echo "apt-repo: $*" >&2; exit 1; }

repo='' gnupghome='' secret_key='' key='' test_key='' valid_days=''
origin=awg label=awg archs='amd64 arm64'
declare -A add=()   # suite → newline-separated .deb paths given now
suite=''
while (($#)); do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    --gnupghome) gnupghome=$2; shift 2 ;;
    --secret-key) secret_key=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --test-key) test_key=$2; shift 2 ;;
    --valid-days) valid_days=$2; shift 2 ;;
    --origin) origin=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --arch) archs=$2; shift 2 ;;
    --suite) suite=$2; [[ $suite =~ ^[a-z0-9][a-z0-9.-]*$ ]] || die "bad suite name: $suite"; add[$suite]=${add[$suite]:-}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -n "$suite" ] || die "$1: name its suite first (--suite NAME $1)"
       [ -f "$1" ] || die "$1: no such file"
       add[$suite]+="$(realpath "$1")"$'\n'; shift ;;
  esac
done
[ -n "$repo" ] || die "--repo DIR is required"
for t in dpkg-scanpackages dpkg-deb gpg gzip sha256sum; do command -v "$t" >/dev/null || die "$t is missing (apt install dpkg-dev gnupg)"; done
[ -z "$valid_days" ] || [[ $valid_days =~ ^[1-9][0-9]*$ ]] || die "--valid-days: a whole number of days"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-apt-repo.XXXXXX")
# the agents gpg starts for a home of ours (a temporary one, the test key's) end with us
trap 'for h in "$tmp/gnupg" ${test_key:+"$test_key"}; do gpgconf --homedir "$h" --kill all >/dev/null 2>&1 || true; done; rm -rf "$tmp"' EXIT

# ---- the signing key ---------------------------------------------------------------------------
if [ -n "$test_key" ]; then
  [ -z "$gnupghome$secret_key" ] || die "--test-key excludes --gnupghome and --secret-key"
  mkdir -p "$test_key"; chmod 700 "$test_key"
  if ! gpg --homedir "$test_key" --batch --list-secret-keys --with-colons 2>/dev/null | grep '^sec' >/dev/null; then
    gpg --homedir "$test_key" --batch --quiet --passphrase '' --quick-generate-key \
      'awg test archive key (tests only) <awg-test@localhost>' ed25519 sign never 2>/dev/null
  fi
  gnupghome=$test_key
  key=${key:-$(gpg --homedir "$gnupghome" --batch --list-secret-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ { print $10; exit }')}
elif [ -n "$secret_key" ]; then
  [ -z "$gnupghome" ] || die "give --gnupghome or --secret-key, not both"
  gnupghome=$tmp/gnupg; mkdir -m 700 "$gnupghome"
  gpg --homedir "$gnupghome" --batch --quiet --import "$secret_key" 2>/dev/null || die "$secret_key: gpg could not import it"
fi
[ -n "$gnupghome" ] || die "no signing key: --gnupghome DIR or --secret-key FILE, with --key FINGERPRINT"
gnupghome=$(realpath "$gnupghome")
[[ $key =~ ^[0-9A-Fa-f]{40}$ ]] || die "--key: the key's full fingerprint (40 hex digits)"
g() { gpg --homedir "$gnupghome" --batch --quiet --no-auto-check-trustdb "$@"; }
g --list-secret-keys "$key" >/dev/null 2>&1 || die "no secret key $key in $gnupghome"

# ---- pool --------------------------------------------------------------------------------------
mkdir -p "$repo/pool/main" "$repo/dists"
repo=$(realpath "$repo")
cd "$repo"
for s in "${!add[@]}"; do
  while IFS= read -r deb; do
    [ -n "$deb" ] || continue
    name=$(dpkg-deb -f "$deb" Package) ver=$(dpkg-deb -f "$deb" Version) arch=$(dpkg-deb -f "$deb" Architecture)
    [[ $name =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "$deb: bad package name"
    dir=pool/main/${name:0:1}/$name
    # the epoch's colon is not part of Debian's file names
    file=$dir/${name}_${ver#*:}_$arch.deb
    mkdir -p "$dir"
    if [ -e "$file" ]; then
      cmp -s "$deb" "$file" || die "$file exists with other contents: a published version never changes (bump the version)"
    else
      cp "$deb" "$file.tmp" && mv "$file.tmp" "$file"
    fi
    echo "$file" >>"$tmp/members.$s"
  done <<<"${add[$s]}"
done

# ---- indices, Release, signatures --------------------------------------------------------------
# every package of the pool once (all versions: --multiversion), Filename relative to $repo
dpkg-scanpackages --multiversion pool >"$tmp/all" 2>"$tmp/scan.log" || { cat "$tmp/scan.log" >&2; die "dpkg-scanpackages failed"; }
suites=$( { ls dists; printf '%s\n' "${!add[@]}"; } | sort -u)
for s in $suites; do
  [ -d "dists/$s" ] || [ -n "${add[$s]+x}" ] || continue
  # members: what the suite lists already (still in the pool) + what is added now
  for p in dists/"$s"/main/binary-*/Packages; do [ -f "$p" ] && sed -n 's/^Filename: //p' "$p"; done >>"$tmp/members.$s"
  sort -u "$tmp/members.$s" -o "$tmp/members.$s"
  for a in $archs; do
    d=dists/$s/main/binary-$a
    mkdir -p "$d"
    # stanzas whose Filename is a member and whose Architecture is this one or `all`
    awk -v a="$a" 'NR == FNR { m[$0] = 1; next }
      { f = ""; ar = ""; n = split($0, l, "\n")
        for (i = 1; i <= n; i++) { if (l[i] ~ /^Filename: /) f = substr(l[i], 11); if (l[i] ~ /^Architecture: /) ar = substr(l[i], 15) }
        if ((f in m) && (ar == a || ar == "all")) printf "%s\n\n", $0 }' \
      "$tmp/members.$s" RS= "$tmp/all" >"$d/Packages.tmp"
    gzip -9n <"$d/Packages.tmp" >"$d/Packages.gz.tmp"
    mv "$d/Packages.tmp" "$d/Packages"; mv "$d/Packages.gz.tmp" "$d/Packages.gz"
  done
  {
    echo "Origin: $origin"
    echo "Label: $label"
    echo "Suite: $s"
    echo "Codename: $s"
    echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
    [ -z "$valid_days" ] || echo "Valid-Until: $(LC_ALL=C date -u -d "+$valid_days days" '+%a, %d %b %Y %H:%M:%S UTC')"
    echo "Architectures: $archs"
    echo "Components: main"
    echo "Description: awg packages ($s)"
    echo "SHA256:"
    (cd "dists/$s" && for f in main/binary-*/Packages main/binary-*/Packages.gz; do
      printf ' %s %16d %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
    done)
  } >"dists/$s/Release.tmp"
  g --yes --local-user "$key!" --digest-algo SHA512 --armor --detach-sign -o "dists/$s/Release.gpg.tmp" "dists/$s/Release.tmp"
  g --yes --local-user "$key!" --digest-algo SHA512 --clearsign -o "dists/$s/InRelease.tmp" "dists/$s/Release.tmp"
  # InRelease last: a client that sees it sees the indices it names
  mv "dists/$s/Release.tmp" "dists/$s/Release"
  mv "dists/$s/Release.gpg.tmp" "dists/$s/Release.gpg"
  mv "dists/$s/InRelease.tmp" "dists/$s/InRelease"
  echo "apt-repo: $s: $(grep -c '^Package: ' "dists/$s/main/binary-${archs%% *}/Packages" || true) package(s) for ${archs%% *}" >&2
done

g --export "$key" >awg-archive-keyring.gpg.tmp
[ -s awg-archive-keyring.gpg.tmp ] || die "could not export the public key $key"
mv awg-archive-keyring.gpg.tmp awg-archive-keyring.gpg
echo "$repo"
