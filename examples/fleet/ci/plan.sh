#!/usr/bin/env bash
# Pull-request plans for every host of hosts.txt: validate, render and plan each one against
# its recorded observation (observed/<host>.json, when there is one) without root, without
# the host and without secrets; write plans/<host>.json and a Markdown summary (plans/summary.md)
# to post as a PR comment. Exit 1 when any host's config is invalid.
set -euo pipefail
cd "$(dirname "$0")/.."
awg=${AWG:-awg}
mkdir -p plans
status=0
{
  echo "| host | result | create | update | replace | delete |"
  echo "|---|---|---|---|---|---|"
} > plans/summary.md
while read -r host labels; do
  [[ -z "$host" || "$host" == \#* ]] && continue
  sel=(--host "$host" --labels-file "$labels" --os linux)
  if ! $awg validate -f awg.yaml --skip-secrets "${sel[@]}" > "plans/$host.validate.txt" 2>&1; then
    echo "| $host | **invalid** (see plans/$host.validate.txt) | | | | |" >> plans/summary.md
    status=1
    continue
  fi
  if [[ -f "observed/$host.json" ]]; then obs="observed/$host.json"; else
    # never recorded: planned as a fresh install
    echo '{"resources":[],"foreign":[]}' > "plans/$host.empty.json"; obs="plans/$host.empty.json"
  fi
  set +e
  $awg diff --json --skip-secrets -f awg.yaml "${sel[@]}" --observed "$obs" --state-dir plans/.no-state > "plans/$host.json" 2> "plans/$host.diff.txt"
  rc=$?
  set -e
  case $rc in
    0) result="no changes" ;;
    2) result="changes" ;;
    *) result="**error** (see plans/$host.diff.txt)"; status=1 ;;
  esac
  if [[ $rc == 0 || $rc == 2 ]]; then
    read -r c u r d < <(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).summary; console.log(s.create,s.update,s.replace,s.delete)' "plans/$host.json")
  else c=; u=; r=; d=; fi
  echo "| $host | $result | $c | $u | $r | $d |" >> plans/summary.md
done < hosts.txt
cat plans/summary.md
exit $status
