// SIGUSR1 and SIGTERM, which SLURM sends a job near its time limit (`--signal`, `scancel`), ask a
// training run to stop: the run finishes its step, writes a checkpoint and exits 75 (requeue).
// The handlers are installed first thing in main, so that a signal that comes while the run
// starts (reading its config, loading a checkpoint) stops it the same way instead of killing it.
#pragma once

namespace rewarm {

void install_stop_signals();
// A stop signal has come since the handlers were installed.
bool stop_requested();

}  // namespace rewarm
