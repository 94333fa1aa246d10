# Sourced by the job scripts (jobscripts/{nvidia,amd,local}.sbatch) after their site settings:
# runs task $SLURM_ARRAY_TASK_ID of a job-array group of a study, and requeues the task when
# rewarm stopped near the time limit (--signal=USR1, exit status 75), so it resumes exactly.
#   arguments: STUDY RUNS [sweep options...]   (RUNS: the group's run names, comma-separated)
#   environment: REWARM (the binary), LAUNCH (srun with the target's options)
study=$1 runs=$2
shift 2
IFS=, read -r -a names <<<"$runs"
name=${names[$SLURM_ARRAY_TASK_ID]}
echo "rewarm study $study, run $name: job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname), $(date)"
set +e
$LAUNCH "$REWARM" sweep "$study" "$@" --run "$name"
status=$?
set -e
if ((status == 75)); then  # checkpoint written: go back in the queue, resume from it
  echo "rewarm: $name stopped near the time limit; requeueing ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  exit 0
fi
exit $status
