#!/usr/bin/env bash
# Runs every run of a study on this machine, stage by stage (a run starts when the runs it
# starts from have ended), N at a time, then draws its figures and tables:
#   scripts/run_study.sh STUDY.toml [--jobs N] [--budget NAME] [--set key=value]...
# Each run's output goes to RUN_ROOT/logs/NAME.log; a line per run says when it starts and ends.
# Rerunning resumes unfinished runs and skips finished ones. On a cluster, use
# jobscripts/submit_study.sh instead (job arrays, one task per run).
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: scripts/run_study.sh STUDY.toml [--jobs N] [--budget NAME] [--set key=value]...}
shift
jobs=$(nproc) args=()
while (($#)); do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
rewarm=${REWARM:-build/src/rewarm}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
root=$($rewarm sweep "$study" "${args[@]}" --print-run-root)
mkdir -p "$root/logs"
$rewarm sweep "$study" "${args[@]}" --manifest "$root/study.json"
names=($(/usr/bin/python3 -c "import json,sys; print(' '.join(r['name'] for r in json.load(open(sys.argv[1]))['runs']))" "$root/study.json"))
total=${#names[@]} done=0 failed=()
echo "study $study: $total runs in $root, $jobs at a time"
start=$SECONDS
while read -r stage count _; do
  pids=() tasks=()
  for ((task = 0; task < count; task++)); do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    name=$($rewarm sweep "$study" "${args[@]}" --stage "$stage" --task-name "$task")
    echo "  [$(date +%T)] start  $name"
    ( if $rewarm sweep "$study" "${args[@]}" --stage "$stage" --task "$task" >"$root/logs/$name.log" 2>&1; then
        echo "  [$(date +%T)] done   $name  $(grep '^eval' "$root/logs/$name.log" | tail -2 | awk '{printf "%s %s  ", $5, $7}')"
      else
        echo "  [$(date +%T)] FAILED $name (see $root/logs/$name.log)"; exit 1
      fi ) &
    pids+=($!) tasks+=("$name")
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${tasks[$i]}"); done
  ((${#failed[@]} == 0)) || { echo "stopping before stage $((stage + 1)): failed: ${failed[*]}"; break; }
done < <($rewarm sweep "$study" "${args[@]}" --stages)
echo "runs ended after $((SECONDS - start)) s"
/usr/bin/python3 -m postprocess report --study "$root/study.json"
((${#failed[@]} == 0))
