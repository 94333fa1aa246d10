#!/usr/bin/env bash
# Submits a whole study to SLURM: every run as a job-array task, the runs that start from
# another run's checkpoint held (--dependency=afterok) until it has ended well, then a
# postprocess job (afterany) that draws the figures and tables, also when some runs failed.
#
#   jobscripts/submit_study.sh STUDY.toml --target nvidia|amd|local [--budget NAME]
#                              [--throttle N] [--set key=value]... [--run-root DIR] [--dry-run]
#
# Edit the site-settings block of jobscripts/<target>.sbatch once (account, partition, modules,
# the rewarm binary). A run whose parent failed is cancelled with it, and the postprocess report
# lists it as not complete. Logs: RUN_ROOT/logs/<group>_<jobid>_<task>.out; job ids:
# RUN_ROOT/jobs.txt. Tasks stop near their time limit with a checkpoint and requeue themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: jobscripts/submit_study.sh STUDY.toml --target nvidia|amd|local [options]}
shift
target="" throttle=8 dry=0 args=()
while (($#)); do
  case $1 in
    --target) target=$2; shift 2 ;;
    --throttle) throttle=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --budget | --set | --run-root) args+=("$1" "$2"); shift 2 ;;
    *) echo "submit_study: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $target =~ ^(nvidia|amd|local)$ ]] || { echo "submit_study: --target nvidia, amd or local" >&2; exit 2; }
rewarm=${REWARM:-build/src/rewarm}  # sweep only reads files: any build of rewarm will do here
root=$($rewarm sweep "$study" "${args[@]}" --print-run-root)
mkdir -p "$root/logs"
$rewarm sweep "$study" "${args[@]}" --manifest "$root/study.json"
name=$(basename "$study" .toml)
if /usr/bin/python3 -c "import h5py, matplotlib, pandas" 2>/dev/null; then export PYTHON=/usr/bin/python3; fi
sbatch() {  # prints the job id (a fake one with --dry-run)
  if ((dry)); then echo "sbatch $*" >&2; echo $((RANDOM + 1000)); else command sbatch --parsable "$@" | cut -d';' -f1; fi
}
declare -A task_of  # run name -> JOBID_TASK
all=() group=0
: >"$root/jobs.txt"
while read -r stage parents runs; do
  IFS=, read -r -a names <<<"$runs"
  deps=()
  if [[ $parents != - ]]; then
    for p in ${parents//,/ }; do deps+=("${task_of[$p]}"); done
  fi
  jid=$(sbatch --job-name="$name-$stage-$group" --array="0-$((${#names[@]} - 1))%$throttle" \
    ${deps:+--dependency=afterok:$(IFS=:; echo "${deps[*]}") --kill-on-invalid-dep=yes} \
    --output="$root/logs/%x_%A_%a.out" "jobscripts/$target.sbatch" "$study" "$runs" "${args[@]}")
  for i in "${!names[@]}"; do task_of[${names[$i]}]=${jid}_$i; echo "${names[$i]} ${jid}_$i" >>"$root/jobs.txt"; done
  echo "stage $stage: job $jid, ${#names[@]} runs${deps:+ after ${parents}}: $runs"
  all+=("$jid") group=$((group + 1))
done < <($rewarm sweep "$study" "${args[@]}" --plan)
post=$(sbatch --job-name="$name-postprocess" --dependency="afterany:$(IFS=:; echo "${all[*]}")" \
  --output="$root/logs/%x_%j.out" jobscripts/postprocess.sbatch "$root/study.json")
echo "postprocess: job $post -> $root/report/ (figures, summary.md, findings.md)"
echo "postprocess $post" >>"$root/jobs.txt"
