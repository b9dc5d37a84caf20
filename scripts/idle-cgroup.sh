#!/usr/bin/env bash
# A CPU cgroup the kernel schedules as idle (cpu.idle = 1, Linux 5.15+): what runs in it gets
# only CPU no other task wants, and a task of another group that wakes preempts it at once.
# scripts/test.sh runs the Node 22 and 24 unit passes in one beside the netns tests.
#   idle-cgroup.sh create NAME   prints the new cgroup's directory; fails (prints nothing)
#                                where there is no cpu controller with cpu.idle
#   idle-cgroup.sh remove DIR    kills what is left in it and removes it
# cgroup v1 (the cpu hierarchy at /sys/fs/cgroup/cpu) and v2 (where the root already hands the
# cpu controller to its children; this script does not turn it on).
set -euo pipefail
case "${1:-}" in
  create)
    name="$2-$$"
    for parent in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup; do
      [ -d "$parent" ] || continue
      if [ -f "$parent/cgroup.controllers" ]; then
        # v2: the root must hand the cpu controller to its children
        grep -qw cpu "$parent/cgroup.subtree_control" || continue
      elif [ ! -f "$parent/cpu.shares" ]; then
        continue
      fi
      dir="$parent/$name"
      mkdir "$dir" 2>/dev/null || continue
      if [ -f "$dir/cpu.idle" ] && echo 1 > "$dir/cpu.idle" 2>/dev/null &&
        [ "$(cat "$dir/cpu.idle")" = 1 ]; then
        echo "$dir"
        exit 0
      fi
      rmdir "$dir" 2>/dev/null || true
    done
    exit 1
    ;;
  remove)
    dir="$2"
    [ -d "$dir" ] || exit 0
    for _ in 1 2 3 4 5; do
      pids=$(cat "$dir/cgroup.procs" 2>/dev/null || true)
      [ -n "$pids" ] || break
      # shellcheck disable=SC2086
      kill -9 $pids 2>/dev/null || true
      sleep 0.2
    done
    rmdir "$dir" 2>/dev/null || echo "idle-cgroup: $dir could not be removed" >&2
    ;;
  *)
    echo "usage: idle-cgroup.sh create NAME | remove DIR" >&2
    exit 2
    ;;
esac
