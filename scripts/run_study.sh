#!/usr/bin/env bash
# Runs every run of a study on this machine, stage by stage (a run starts when the runs it
# starts from have ended), N at a time, then draws its figures and tables:
#   scripts/run_study.sh STUDY.toml [--jobs N] [--budget NAME] [--set key=value]... [--run-root DIR]
# Each run's output goes to RUN_ROOT/logs/NAME.log; a line per run says when it starts and ends.
# Rerunning resumes unfinished runs and skips finished ones. On a cluster, use
# jobscripts/submit_study.sh instead (job arrays, one task per run).
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: scripts/run_study.sh STUDY.toml [--jobs N] [--budget NAME] [--set key=value]... [--run-root DIR]}
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
total=$(/usr/bin/python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['runs']))" "$root/study.json")
echo "study $study: $total runs in $root, $jobs at a time"
start=$SECONDS failed=()
run_one() {  # name ranks; leaves its outcome in logs/NAME.status
  local launch=()
  if (($2 > 1)); then  # root may run mpirun here: the machine is the user's own
    launch=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -n "$2" --bind-to none)
  fi
  echo "  [$(date +%T)] start  $1$( (($2 > 1)) && echo " on $2 ranks")"
  if "${launch[@]}" $rewarm sweep "$study" "${args[@]}" --run "$1" >"$root/logs/$1.log" 2>&1; then
    echo "  [$(date +%T)] done   $1  $(grep '^eval' "$root/logs/$1.log" | tail -2 |
      awk '{for (i = 2; i < NF; i++) if ($i == "loss") printf "%s %s  ", $(i - 1), $(i + 1)}')"
    echo ok >"$root/logs/$1.status"
  else
    echo "  [$(date +%T)] FAILED $1 (see $root/logs/$1.log)"
    echo failed >"$root/logs/$1.status"
  fi
}
end_stage() {  # waits for the stage's runs and collects the failed ones
  wait
  for n in "${names[@]}"; do [[ $(cat "$root/logs/$n.status" 2>/dev/null) == ok ]] || failed+=("$n"); done
  names=()
}
# The order: a run that no other run starts from waits for the last stage, so that the runs the
# others wait for have the cores first; a stage of fewer runs than --jobs gives each of them
# the spare cores as MPI ranks (a run is the same run on any number of ranks), as many as
# divide its batch. Lines "STAGE RANKS NAME PARENTS".
schedule() {
  /usr/bin/python3 - "$root/study.json" "$jobs" "$(command -v mpirun >/dev/null && echo 1 || echo 0)" <<'PY'
import json, sys
runs, jobs, mpi = json.load(open(sys.argv[1]))["runs"], int(sys.argv[2]), sys.argv[3] == "1"
wanted = {p for r in runs for p in r["after"]}
last = max(r["stage"] for r in runs)
stage = {r["name"]: r["stage"] if r["name"] in wanted else last for r in runs}
for k in range(last + 1):
    group = sorted((r for r in runs if stage[r["name"]] == k), key=lambda r: r["stage"] != k)  # deferred last
    for r in group:
        share = jobs // len(group) if mpi else 1
        ranks = max(n for n in range(1, max(share, 1) + 1) if r["global_batch"] % (n * r["micro_batch"]) == 0)
        print(k, ranks, r["name"], ",".join(r["after"]) or "-")
PY
}
stage=0 names=() seen=0
while read -r k ranks name parents; do
  seen=$((seen + 1))
  if ((k != stage)); then  # a stage starts when every run of the one before has ended
    end_stage
    stage=$k
  fi
  blocked=0
  for p in ${parents//,/ }; do [[ " ${failed[*]} " == *" $p "* ]] && blocked=1; done
  if ((blocked)); then echo "  [$(date +%T)] skip   $name (a run it starts from failed)"; failed+=("$name"); continue; fi
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  rm -f "$root/logs/$name.status"
  run_one "$name" "$ranks" </dev/null &  # mpirun reads its stdin: not the schedule
  names+=("$name")
done < <(schedule)
end_stage
if ((seen != total)); then  # every run is started or skipped, or the schedule was cut short
  echo "run_study: only $seen of the $total runs were scheduled" >&2
  exit 1
fi
echo "runs ended after $((SECONDS - start)) s"
/usr/bin/python3 -m postprocess report --study "$root/study.json"
((${#failed[@]} == 0))
